"""Every path of the synthesized state machine, run locally with the real handler on the emulator."""

from __future__ import annotations

import json

import pytest
from workflow import DS, Study, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator

pytestmark = pytest.mark.slow


def event(image_set_id: str, *, primary: bool = False) -> dict[str, object]:
    return seed.image_set_created_event(DS, image_set_id, is_primary=primary)


def console(source: str, **fields: object) -> dict[str, object]:
    return {"datastoreId": DS, "sourceImageSetId": source, **fields}


def test_happy_snapshot_copy(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(event(study.primary, primary=True))
    assert record.status == "SUCCEEDED", record.cause
    output = record.output or {}
    assert output["status"] == "COPIED" and output["forced"] is False
    assert set(output) == {
        "datastoreId",
        "sourceImageSetId",
        "sourceVersionId",
        "destinationImageSetId",
        "destinationVersionId",
        "status",
        "forced",
        "promotedToPrimary",
        "attempts",
        "polls",
        "waitedSeconds",
    }
    new = emulator.image_sets[(DS, output["destinationImageSetId"])]
    assert (new.state, new.workflow) == ("ACTIVE", "COPIED")
    assert emulator.copy_image_set_calls() == [200]


def test_console_copy_into_a_named_destination(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(console(study.consistent, destinationImageSetId=study.primary, promoteToPrimary=True))
    assert (record.output or {})["destinationImageSetId"] == study.primary
    assert (record.output or {})["destinationVersionId"] == "2"


def test_conflict_then_success(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    # Another operator's copy holds the primary locked for 45 s.
    operators = emulator.seed_image_set(
        DS, seed.image_set_metadata(patient_number=1, study=1, series=[9]), is_primary=False
    )
    emulator.call(
        "CopyImageSet",
        {
            "datastoreId": DS,
            "sourceImageSetId": operators,
            "copyImageSetInformation": {
                "sourceImageSet": {"latestVersionId": "1"},
                "destinationImageSet": {"imageSetId": study.primary, "latestVersionId": "1"},
            },
        },
    )
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        record = pipeline.run(event(study.consistent))
    assert record.status == "SUCCEEDED", record.cause
    assert "CopyConflict" in record.task_failures()
    assert (record.output or {})["attempts"] > 1


def test_conflict_until_attempts_run_out(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    emulator.faults.copy_faults.extend(["error:ConflictException"] * 10)
    with local_pipeline(emulator, clock, conflictRetryAttempts=2) as pipeline:
        record = pipeline.run(console(study.primary))
    assert record.status == "FAILED"
    assert record.error == "CopyConflict"
    assert record.task_failures().count("CopyConflict") == 3  # the first attempt and 2 retries
    assert "ConflictException (HTTP 409)" in (record.cause or "")


def test_throttling_is_retried(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    emulator.faults.copy_faults.extend(["error:ThrottlingException"] * 2)
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(console(study.primary))
    assert record.status == "SUCCEEDED", record.cause
    assert record.task_failures().count("CopyThrottled") == 2


@pytest.mark.parametrize("mode", ["deferred", "immediate"])
def test_inconsistent_metadata_goes_through_the_force_branch(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study, mode: str
) -> None:
    emulator.inconsistency_mode = mode  # type: ignore[assignment]
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        record = pipeline.run(event(study.inconsistent))
    assert record.status == "SUCCEEDED", record.cause
    assert "AuthoriseForce" in record.states_entered()
    output = record.output or {}
    assert (output["status"], output["forced"], output["destinationImageSetId"]) == ("COPIED", True, study.primary)
    assert emulator.image_sets[(DS, study.primary)].forced is True


def test_force_refused_by_never(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary", forcePolicy="never") as pipeline:
        record = pipeline.run(event(study.inconsistent))
    assert (record.status, record.error) == ("FAILED", "ForceRefused")
    assert "'never'" in (record.cause or "") and "StudyDescription" in (record.cause or "")


def test_force_refused_by_same_patient_when_patients_differ(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        record = pipeline.run(event(study.other_patient))
    assert (record.status, record.error) == ("FAILED", "ForceRefused")
    assert "PatientName" in (record.cause or "") and "MISFILED" not in (record.cause or "")
    assert [copy.force for copy in emulator.accepted_copies(study.other_patient)] == [False]  # nothing was forced
    assert not emulator.forced(study.primary)


def test_copy_failed_for_another_reason(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    emulator.faults.copy_faults.append("fail-later:Frame storage error")
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(console(study.primary))
    assert (record.status, record.error) == ("FAILED", "CopyFailed")
    assert "AuthoriseForce" not in record.states_entered()


def test_a_forced_copy_that_fails_is_copy_failed_not_inconsistent_again(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    def fail_the_forced_copy(event: dict[str, object]) -> None:
        if event.get("action") == "authorise_force":
            emulator.faults.copy_faults.append("fail-later:Frame storage error")

    with local_pipeline(emulator, clock) as pipeline:
        pipeline.handler_hook = fail_the_forced_copy
        record = pipeline.run(console(study.inconsistent, destinationImageSetId=study.primary))
    # Force overrides inconsistency, so it cannot be why the forced copy failed: no second force decision.
    assert (record.status, record.error) == ("FAILED", "CopyFailed")
    assert record.states_entered().count("AuthoriseForce") == 1
    assert [copy.force for copy in emulator.accepted_copies(study.inconsistent)] == [False, True]


def test_wait_timeout(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    emulator.copy_seconds = 10_000
    with local_pipeline(emulator, clock, maxWaitSeconds=300) as pipeline:
        record = pipeline.run(console(study.primary))
    assert (record.status, record.error) == ("FAILED", "CopyWaitTimedOut")
    polls = record.states_entered().count("CheckCopy")
    assert polls <= 8  # growing waits: few transitions however long the wait


@pytest.mark.parametrize(
    "bad",
    [
        {"datastoreId": DS},
        {"datastoreId": DS, "sourceImageSetId": "x" * 32, "force": "true"},
        {"source": "aws.medical-imaging", "detail-type": "Image Set Created", "detail": {}},
    ],
)
def test_bad_input_fails_fast_naming_the_field(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study, bad: dict[str, object]
) -> None:
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(bad)
    assert (record.status, record.error) == ("FAILED", "InvalidCopyRequest")
    assert record.states_entered() == ["RouteCopy", "ValidateInput", "InvalidInput"]
    cause = json.loads(record.cause or "{}")
    assert cause["errorMessage"].startswith("invalid")
    assert emulator.calls == []  # no HealthImaging call at all


def test_skipped_event_succeeds_without_copying(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        record = pipeline.run(event(study.primary, primary=True))
    assert record.output == {"status": "SKIPPED", "reason": "image set is already primary: nothing to merge"}
    assert emulator.copy_image_set_calls() == []
