"""Every COPIED is true while other writers touch the same image sets.

Each scenario runs the synthesized state machine with the real handler on the emulator, with
another writer's action scheduled on the virtual clock, and asserts on the emulator's own
record: which copies it accepted from the pipeline, which instances each version holds, and
whether a version was forced. Timings: a copy takes 45 s; CheckCopy looks when the copy's completion
event wakes it (1 s after it lands here), or, with no event, completionWaitSeconds (60 s) after StartCopy.
A scenario whose other writer must act between our copy's end and our look drops the completion events
(best effort: the fallback look is what they then rely on), and asserts that they were dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from workflow import DS, Study, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator, ScheduledCopy, ScheduledUpdate
from offline.runner import LocalPipeline

pytestmark = pytest.mark.slow


def console(source: str, **fields: object) -> dict[str, object]:
    return {"datastoreId": DS, "sourceImageSetId": source, **fields}


def merge_event(source: str) -> dict[str, Any]:
    return seed.image_set_created_event(DS, source, is_primary=False)


class Steps:
    """When the function ran each action (the virtual clock's time, every invocation), and what runs just
    before it first runs one: what a test needs to show its other writer acted while the copy was under way."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.ran_at: dict[str, list[float]] = defaultdict(list)
        self._before_first: dict[str, Callable[[], None]] = {}
        self._clock = pipeline.clock
        pipeline.handler_hook = self._hook

    def before_first(self, action: str, then: Callable[[], None]) -> Steps:
        self._before_first[action] = then
        return self

    def _hook(self, event: dict[str, Any]) -> None:
        action = str(event.get("action"))
        if action in self._before_first and not self.ran_at[action]:
            self._before_first[action]()
        self.ran_at[action].append(self._clock.now())


def on_first(pipeline: LocalPipeline, action: str, then: Callable[[], None]) -> Steps:
    """Run `then` once, just before the function first runs `action`."""
    return Steps(pipeline).before_first(action, then)


def another_part_of_the_series(emulator: HealthImagingEmulator, *instances: int) -> str:
    document = seed.series_image_set_metadata(patient_number=1, study=1, series=1, instances=instances)
    return emulator.seed_image_set(DS, document)


def test_our_failed_merge_is_not_reported_copied_when_another_merge_lands_after_it(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    other = another_part_of_the_series(emulator, 11, 12)
    emulator.faults.copy_faults.append("fail-later:Frame storage error")  # our copy fails
    theirs: list[ScheduledCopy] = []
    # Our first look 100 s after StartCopy (no completion event comes): after our copy failed (45 s), another
    # merge is accepted into the primary (48 s) and lands (93 s) before it.
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary", completionWaitSeconds=100) as pipeline:
        pipeline.events.drop = lambda event: True
        steps = on_first(
            pipeline,
            "start_copy",
            lambda: theirs.append(emulator.schedule_copy(clock.now() + 48, other, study.primary)),
        )
        record = pipeline.run(merge_event(study.consistent))
        dropped = [(event["detail-type"], event["detail"]["imageSetId"]) for event in pipeline.events.dropped]
    assert (record.status, record.error) == ("FAILED", "CopyFailed"), record.output
    assert "version 2" in (record.cause or "")
    ours = emulator.instances(study.consistent)
    assert not ours & emulator.instances(study.primary)  # none of our data reached the primary
    assert emulator.instances(other) <= emulator.instances(study.primary)  # theirs did
    assert len(emulator.accepted_copies(study.consistent)) == 1
    # Their merge happened: accepted after our copy failed, landed (version 3) before our one look at ours.
    (scheduled,) = theirs
    (their_copy,) = emulator.accepted_copies(other, by="other-writer")
    assert scheduled.refusal is None and scheduled.accepted is their_copy and their_copy.outcome == "COPIED"
    assert (their_copy.destination_id, their_copy.destination_version_id) == (study.primary, 3)
    assert their_copy.completes_at <= steps.ran_at["check_copy"][0] and len(steps.ran_at["check_copy"]) == 1
    # Both copies' outcome events, ours first.
    assert dropped == [("Image Set Copy Failed", study.primary), ("Image Set Copied", study.primary)]


def test_another_writers_failed_copy_after_ours_is_not_taken_for_ours(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    other = another_part_of_the_series(emulator, 11, 12)
    theirs: list[ScheduledCopy] = []
    # After our copy landed (45 s after StartCopy) and before our look (60 s: no completion event comes), another
    # writer's copy into the primary is accepted (48 s), to fail later.
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        pipeline.events.drop = lambda event: True
        steps = on_first(
            pipeline,
            "start_copy",
            lambda: theirs.append(
                emulator.schedule_copy(
                    clock.now() + 48,
                    other,
                    study.primary,
                    outcome="COPY_FAILED",
                    message="Inconsistent metadata use force",
                )
            ),
        )
        record = pipeline.run(merge_event(study.consistent))
        dropped = [(event["detail-type"], event["detail"]["imageSetId"]) for event in pipeline.events.dropped]
    assert record.status == "SUCCEEDED", record.cause
    assert dropped[0] == ("Image Set Copied", study.primary)  # our copy's outcome event: the look was the fallback
    output = record.output or {}
    assert (output["status"], output["destinationVersionId"], output["forced"]) == ("COPIED", "2", False)
    assert "AuthoriseForce" not in record.states_entered()  # no force decision on another copy's error
    assert emulator.instances(study.consistent) <= emulator.instances(study.primary, 2)
    assert [copy.force for copy in emulator.accepted_copies(study.consistent)] == [False]
    # Their copy happened: accepted into the primary after ours (version 3) while we still looked, then failed.
    clock.advance(60)  # their copy lands
    (scheduled,) = theirs
    (their_copy,) = emulator.accepted_copies(other, by="other-writer")
    assert scheduled.refusal is None and scheduled.accepted is their_copy
    assert (their_copy.destination_id, their_copy.destination_version_id) == (study.primary, 3)
    assert their_copy.accepted_at < steps.ran_at["check_copy"][-1] and their_copy.outcome == "COPY_FAILED"


def test_a_metadata_update_after_our_copy_does_not_keep_us_waiting(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    updates: list[ScheduledUpdate] = []
    # The update after our copy landed (45 s after StartCopy), before our look (60 s: no completion event comes).
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        pipeline.events.drop = lambda event: True
        steps = on_first(
            pipeline,
            "start_copy",
            lambda: updates.append(emulator.schedule_metadata_update(clock.now() + 48, study.primary)),
        )
        record = pipeline.run(merge_event(study.consistent))
        dropped = len(pipeline.events.dropped)
    assert record.status == "SUCCEEDED", record.cause
    assert (record.output or {})["destinationVersionId"] == "2"
    assert emulator.image_sets[(DS, study.primary)].workflow == "UPDATED"  # the image set moved on: v3
    (update,) = updates
    assert (update.refusal, update.version_id) == (None, 3) and update.at < steps.ran_at["check_copy"][0]
    assert record.states_entered().count("CheckCopy") == 1 and dropped == 1  # one look, on our own version


def test_two_executions_merge_into_one_primary_at_once(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    second = another_part_of_the_series(emulator, 11, 12)
    # Conflict retries at most 5 s apart: the second copy lands in the primary before the first's 75 s look.
    retries = {"conflictRetryIntervalSeconds": 5, "conflictRetryMaxDelaySeconds": 5, "conflictRetryAttempts": 30}
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary", **retries) as pipeline:
        arns = [pipeline.start(merge_event(source)) for source in (study.consistent, second)]
        records = [pipeline.wait(arn) for arn in arns]
    assert all(r.status == "SUCCEEDED" for r in records), [r.cause for r in records]
    versions = sorted((r.output or {})["destinationVersionId"] for r in records)
    assert versions == ["2", "3"]  # each reports the version it produced, not the other's
    for source, record in zip((study.consistent, second), records, strict=True):
        produced = (record.output or {})["destinationVersionId"]
        assert emulator.instances(source) <= emulator.instances(study.primary, produced)
        assert len(emulator.accepted_copies(source)) == 1


def test_an_unanswered_snapshot_never_adopts_a_neighbours_copy(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    """Image sets of one import are copied seconds apart: a 500 on ours (not accepted) while a
    neighbour of the same study is copied must start ours again, never point at theirs."""
    neighbour = emulator.seed_image_set(
        DS, seed.series_image_set_metadata(patient_number=1, study=1, series=2, instances=(1, 2))
    )
    emulator.faults.copy_faults.append("error:InternalServerException")
    scheduled: list[ScheduledCopy] = []
    with local_pipeline(emulator, clock) as pipeline:
        steps = on_first(
            pipeline, "start_copy", lambda: scheduled.append(emulator.schedule_copy(clock.now() + 1, neighbour))
        )
        record = pipeline.run(console(study.primary))
    assert record.status == "SUCCEEDED", record.cause
    (ours,) = emulator.accepted_copies(study.primary)
    (theirs,) = emulator.accepted_copies(neighbour, by="other-writer")
    assert (record.output or {})["destinationImageSetId"] == ours.destination_id != theirs.destination_id
    assert emulator.instances(ours.destination_id) == emulator.instances(study.primary)
    # The neighbour's copy was accepted, and had landed, when ConfirmCopy last looked for ours; our 500 was
    # not accepted and the copy was started again: exactly these two CopyImageSet calls.
    (neighbours,) = scheduled
    assert neighbours.refusal is None and neighbours.accepted is theirs and theirs.outcome == "COPIED"
    assert "ConfirmCopy" in record.states_entered() and theirs.completes_at <= steps.ran_at["confirm_copy"][-1]
    assert emulator.copy_image_set_calls() == [500, 200]


def test_an_accepted_snapshot_updated_before_confirmation_is_adopted_not_copied_again(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    emulator.copy_seconds = 2
    emulator.faults.copy_faults.append("accept-then-500")
    updates: list[ScheduledUpdate] = []
    with local_pipeline(emulator, clock) as pipeline:

        def update_the_new_image_set() -> None:
            (accepted,) = emulator.accepted_copies(study.primary)
            updates.append(emulator.schedule_metadata_update(clock.now() + 3, accepted.destination_id))

        steps = on_first(pipeline, "confirm_copy", update_the_new_image_set)
        record = pipeline.run(console(study.primary))
    assert record.status == "SUCCEEDED", record.cause
    (ours,) = emulator.accepted_copies(study.primary)  # exactly one: adopted, not started again
    assert (record.output or {})["destinationImageSetId"] == ours.destination_id
    assert (record.output or {})["destinationVersionId"] == "1"
    # The update happened on the new image set (its version 2) before ConfirmCopy's last look adopted version 1.
    (update,) = updates
    assert (update.image_set_id, update.refusal, update.version_id) == (ours.destination_id, None, 2)
    assert update.at < steps.ran_at["confirm_copy"][-1]
    assert "ConfirmCopy" in record.states_entered() and emulator.copy_image_set_calls() == [500]


def test_a_dynamodb_failure_between_the_call_and_the_stored_result_copies_once(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    with local_pipeline(emulator, clock) as pipeline:
        import copier.copy_start  # the pipeline's freshly loaded module

        persistence = copier.copy_start.persistence()
        original = persistence.save_success
        failures: list[bool] = []

        def save_fails_once(*args: Any, **kwargs: Any) -> Any:
            if not failures:
                failures.append(True)
                raise RuntimeError("DynamoDB unavailable")  # Powertools: IdempotencyPersistenceLayerError
            return original(*args, **kwargs)

        persistence.save_success = save_fails_once  # type: ignore[method-assign]
        pipeline.remaining_millis = 1  # the in-progress record expires at once
        record = pipeline.run(console(study.consistent, destinationImageSetId=study.primary))
    assert failures == [True]
    assert record.status == "SUCCEEDED", record.cause
    assert "IdempotencyPersistenceLayerError" in record.task_failures()
    assert len(emulator.accepted_copies(study.consistent)) == 1
    assert emulator.instances(study.consistent) <= emulator.instances(study.primary)


def test_a_failure_message_about_inconsistency_does_not_take_the_force_branch(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    emulator.faults.copy_faults.append("fail-later:Inconsistent metadata mismatch use force")
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        record = pipeline.run(merge_event(study.consistent))
    assert (record.status, record.error) == ("FAILED", "CopyFailed")
    assert "AuthoriseForce" not in record.states_entered()
    assert [copy.force for copy in emulator.accepted_copies(study.consistent)] == [False]


def test_a_pinned_destination_version_survives_our_own_failed_version(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(
            console(study.inconsistent, destinationImageSetId=study.primary, destinationVersionId="1")
        )
    assert record.status == "SUCCEEDED", record.cause
    output = record.output or {}
    assert (output["destinationVersionId"], output["forced"]) == ("3", True)  # v2: our failed, unforced copy
    assert emulator.forced(study.primary, 3) and not emulator.forced(study.primary, 2)
    assert emulator.instances(study.inconsistent) <= emulator.instances(study.primary, 3)


def test_merge_goes_into_the_primary_of_the_same_series_not_of_the_study(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    clock.advance(1)  # the study's first primary (series 1) is the oldest: "the study's primary" would pick it
    other_series = [
        emulator.seed_image_set(
            DS, seed.series_image_set_metadata(patient_number=1, study=1, series=2, instances=instances)
        )
        for instances in ((1, 2), (3, 4))
    ]
    primary_of_series_2, part_of_series_2 = other_series
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        record = pipeline.run(merge_event(part_of_series_2))
    assert record.status == "SUCCEEDED", record.cause
    assert (record.output or {})["destinationImageSetId"] == primary_of_series_2 != study.primary
    assert emulator.instances(part_of_series_2) <= emulator.instances(primary_of_series_2)
