"""The operator CLI against the local pipeline: the same copy started twice is one execution."""

from __future__ import annotations

import pytest
from workflow import DS, Study, local_pipeline

from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
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
