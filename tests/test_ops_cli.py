"""The operator CLI against the local pipeline: the same copy started twice is one execution."""

from __future__ import annotations

import re

import pytest
from workflow import DS, Study, local_pipeline

from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import TABLE
from ops.cli import execution_name, main, start

pytestmark = pytest.mark.slow


def test_starting_the_same_copy_twice_starts_one_execution(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study, capsys: pytest.CaptureFixture[str]
) -> None:
    with local_pipeline(emulator, clock) as pipeline:
        argv = [
            "start",
            "--state-machine-arn",
            pipeline.state_machine_arn,
            "--datastore-id",
            DS,
            "--source-image-set-id",
            study.consistent,
            "--destination-image-set-id",
            study.primary,
        ]
        assert main(argv) == 0
        first = capsys.readouterr().out.strip()
        record = pipeline.wait(first)
        second = start(
            state_machine_arn=pipeline.state_machine_arn,
            copy_input={
                "datastoreId": DS,
                "sourceImageSetId": study.consistent,
                "force": False,
                "promoteToPrimary": False,
                "destinationImageSetId": study.primary,
            },
        )
    assert second == first
    assert record.status == "SUCCEEDED", record.cause
    assert len(emulator.accepted) == 1


def test_execution_names_are_valid_and_stable() -> None:
    name = execution_name("console", {"b": 1, "a": "x y"})
    assert name == execution_name("console", {"a": "x y", "b": 1})
    assert len(name) <= 80 and all(c.isalnum() or c in "-_" for c in name)


def test_a_copy_whose_execution_failed_is_started_anew(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    copy_input = {"datastoreId": DS, "sourceImageSetId": study.primary, "force": False, "promoteToPrimary": False}
    emulator.faults.copy_faults.append("error:AccessDeniedException")  # the first execution fails for good
    with local_pipeline(emulator, clock) as pipeline:
        first = start(state_machine_arn=pipeline.state_machine_arn, copy_input=copy_input)
        failed = pipeline.wait(first)
        second = start(state_machine_arn=pipeline.state_machine_arn, copy_input=copy_input)
        succeeded = pipeline.wait(second)
        third = start(state_machine_arn=pipeline.state_machine_arn, copy_input=copy_input)
    assert (failed.status, failed.error) == ("FAILED", "CopyAccessDenied")
    assert second != first and succeeded.status == "SUCCEEDED", succeeded.cause
    assert third == second  # a succeeded copy is returned, not started again
    assert [copy.source_id for copy in emulator.accepted] == [study.primary]


def test_an_undecided_copy_is_settled_by_the_operator_and_not_copied_again(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    """The primary already holds the source's instances (an earlier merge), and a re-copy's answer
    is lost: content cannot tell whether the new version is ours. The operator looks, settles the
    record with `resolve`, and starts the copy again: it completes without a new CopyImageSet."""
    copy_input = {"datastoreId": DS, "sourceImageSetId": study.consistent, "destinationImageSetId": study.primary}
    with local_pipeline(emulator, clock) as pipeline:
        assert pipeline.run(copy_input).status == "SUCCEEDED"  # v2 holds the source's instances
        emulator.faults.copy_faults.append("accept-then-500")
        again = {**copy_input, "promoteToPrimary": True}  # another request: copy the same again
        undecided = pipeline.run(again)
        record_id = re.search(r"copy#[0-9a-f]{64}", undecided.cause or "")
        assert (undecided.error, record_id is not None) == ("CopyOutcomeUndecided", True), undecided.cause
        assert main(["resolve", "--table-name", TABLE, "--record-id", record_id.group(0), "--accepted-into",
                     f"{study.primary}:3"]) == 0  # fmt: skip
        settled = pipeline.wait(start(state_machine_arn=pipeline.state_machine_arn, copy_input=again))
    assert settled.status == "SUCCEEDED", settled.cause
    assert (settled.output or {})["destinationVersionId"] == "3"
    assert len(emulator.accepted_copies(study.consistent)) == 2  # the first copy and the re-copy: no third
    assert "versions after 2 of image set" in (undecided.cause or "")
