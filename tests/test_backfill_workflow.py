"""The backfill workflow, as synthesized, on moto's Step Functions with the real handler and the emulator,
driven by `ops.cli backfill`: start, copy, run again, stop mid-way and resume, hand over to a new execution."""

from __future__ import annotations

from typing import Any
from unittest import mock

import boto3
import pytest
from workflow import DS, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import TABLE, LocalPipeline
from ops.cli import backfill_progress, main

pytestmark = pytest.mark.slow


def seed_image_sets(emulator: HealthImagingEmulator, count: int) -> list[str]:
    emulator.create_datastore(DS)
    return [
        emulator.seed_image_set(DS, seed.series_image_set_metadata(patient_number=1, study=1, series=n, instances=(1,)))
        for n in range(1, count + 1)
    ]


def backfill(pipeline: LocalPipeline, command: str, backfill_id: str, *extra: str) -> None:
    arn = ["--state-machine-arn", pipeline.backfill_state_machine_arn] if command != "status" else []
    assert main(["backfill", command, "--table-name", TABLE, "--id", backfill_id, *arn, *extra]) == 0


def executions(pipeline: LocalPipeline) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=pipeline.backfill_state_machine_arn)["executions"]
    return sorted(listed, key=lambda e: e["name"])


def wait_for_backfill(pipeline: LocalPipeline) -> list[str]:
    """Wait for every execution of the backfill workflow; their statuses, by name."""
    return [f"{e['name']}:{pipeline.wait(e['executionArn']).status}" for e in executions(pipeline)]


def journal_sources() -> list[str]:
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    return [i["journalSourceId"]["S"] for i in items if i["id"]["S"].startswith("journal#")]


def test_a_backfill_copies_each_image_set_once_and_a_second_one_copies_nothing(
    emulator: HealthImagingEmulator, clock: VirtualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seed_image_sets(emulator, 60)
    with local_pipeline(emulator, clock) as pipeline:
        backfill(pipeline, "start", "first", "--everything")
        first = wait_for_backfill(pipeline)
        copies = pipeline.drain_backlog()
        backfill(pipeline, "status", "first")
        backfill(pipeline, "start", "second", "--everything")
        second = wait_for_backfill(pipeline)
        again = pipeline.drain_backlog()
        progress = backfill_progress(table_name=TABLE, backfill_id="second")
        journaled = journal_sources()
    assert first == ["first-e0:SUCCEEDED"] and "second-e0:SUCCEEDED" in second
    assert len(copies) == 60 and all(r.status == "SUCCEEDED" for r in copies)
    assert all(len(emulator.accepted_copies(image_set)) == 1 for image_set in ids)
    assert again == [] and sorted(journaled) == sorted(
        ids + [c.output["destinationImageSetId"] for c in copies if c.output]
    )
    # It sees the first one's 60 copies too: this pipeline's output, skipped (copy-storm guard).
    assert progress is not None
    assert (progress["seen"], progress.get("admitted", 0), progress["skipped"], progress["alreadyJournaled"]) == (
        120,
        0,
        60,
        60,
    )
    printed = capsys.readouterr().out
    done = f"backfill first [{'#' * 30}] 100% admitted 60 copied 60 failed 0 remaining 0 in the bulk lane (DONE)"
    assert done in printed


def test_a_stopped_backfill_resumes_where_it_was_with_no_gap_and_no_duplicate(
    emulator: HealthImagingEmulator, clock: VirtualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seed_image_sets(emulator, 180)
    with local_pipeline(emulator, clock) as pipeline:
        pages = []

        def stop_on_the_second_page(event: dict[str, Any]) -> None:
            if event.get("action") == "backfill_page":
                pages.append(event["executionId"])
                if len(pages) == 2:  # the operator stops it while its second page runs
                    backfill(pipeline, "stop", "bf")

        pipeline.handler_hook = stop_on_the_second_page
        backfill(pipeline, "start", "bf", "--everything")
        stopped = wait_for_backfill(pipeline)
        admitted_when_stopped = len(journal_sources())
        backfill(pipeline, "status", "bf")
        pipeline.handler_hook = None
        backfill(pipeline, "resume", "bf")
        resumed = wait_for_backfill(pipeline)
        progress = backfill_progress(table_name=TABLE, backfill_id="bf")
        journaled = journal_sources()
    assert stopped == ["bf-e0:ABORTED"] and resumed == ["bf-e0:ABORTED", "bf-e1:SUCCEEDED"]
    assert admitted_when_stopped == 50  # the first page; the second saw the stop and read nothing
    assert sorted(journaled) == sorted(ids)  # each admitted once: no gap, no duplicate
    assert progress is not None
    assert (progress["seen"], progress["admitted"], progress["entriesPENDING"], progress["backfillState"]) == (
        180,
        180,
        180,
        "DONE",
    )
    assert "(STOPPED, searching: 50 image sets seen)" in capsys.readouterr().out


def test_a_long_backfill_goes_on_as_new_executions(emulator: HealthImagingEmulator, clock: VirtualClock) -> None:
    ids = seed_image_sets(emulator, 120)
    with local_pipeline(emulator, clock) as pipeline:
        import copier.backfill  # the pipeline's fresh module

        with mock.patch.object(copier.backfill, "PAGES_PER_EXECUTION", 1):
            backfill(pipeline, "start", "long", "--everything")
            for _ in range(3):  # each execution starts the next before it ends
                chain = wait_for_backfill(pipeline)
        journaled = journal_sources()
        progress = backfill_progress(table_name=TABLE, backfill_id="long")
    assert chain == ["long-e0:SUCCEEDED", "long-e1:SUCCEEDED", "long-e2:SUCCEEDED"]
    assert sorted(journaled) == sorted(ids)
    # Every page counted once, whichever execution read it: 50 + 50 + 20 seen and admitted; two hand-overs.
    assert progress is not None
    counted = ("seen", "admitted", "entriesPENDING", "pages", "executions", "backfillState", "executionName")
    assert {name: progress.get(name) for name in counted} == {
        "seen": 120,
        "admitted": 120,
        "entriesPENDING": 120,
        "pages": 3,
        "executions": 2,
        "backfillState": "DONE",
        "executionName": "long-e2",
    }
