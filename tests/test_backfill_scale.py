"""The backfill at scale, end to end: existing image sets on the emulator, through the synthesized backfill
and copy workflows (moto's Step Functions, the real handler, the dispatcher's schedule): stopped mid-way, its
admissions copied, resumed, the rest copied, then run again. Every image set is admitted once and copied
once; the resumed run goes on from where it stopped (no gap, no second entry); the second run copies nothing.

1,000 image sets in `make test`; `BACKFILL_TEST_IMAGE_SETS=10000` runs the 10,000 of the target
(`make test-scale`, docs/design.md: its duration)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import boto3
import pytest
from workflow import DS, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import TABLE, LocalPipeline
from ops.cli import backfill_progress, main

pytestmark = pytest.mark.slow
IMAGE_SETS = int(os.environ.get("BACKFILL_TEST_IMAGE_SETS", "1000"))
STOP_AT_PAGE = max(2, IMAGE_SETS // 50 * 2 // 5)  # about 40% of the way


def journal_sources() -> Counter[str]:
    sources: Counter[str] = Counter()
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=TABLE):
        sources.update(i["journalSourceId"]["S"] for i in page["Items"] if i["id"]["S"].startswith("journal#"))
    return sources


def run(pipeline: LocalPipeline, command: str, backfill_id: str, *extra: str) -> None:
    arn = ["--state-machine-arn", pipeline.backfill_state_machine_arn]
    assert main(["backfill", command, "--table-name", TABLE, "--id", backfill_id, *arn, *extra]) == 0


def copies_made(emulator: HealthImagingEmulator, ids: list[str]) -> Counter[int]:
    """How many image sets have each number of accepted copies."""
    return Counter(len(emulator.accepted_copies(image_set)) for image_set in ids)


def finish(pipeline: LocalPipeline) -> list[str]:
    sfn = boto3.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=pipeline.backfill_state_machine_arn)["executions"]
    return sorted(f"{e['name']}:{pipeline.wait(e['executionArn'], timeout=1_800).status}" for e in listed)


def test_every_image_set_is_copied_once_through_a_stop_a_resume_and_a_second_run(
    clock: VirtualClock,
) -> None:
    emulator = HealthImagingEmulator(clock=clock.now)
    emulator.create_datastore(DS)
    ids = [
        emulator.seed_image_set(
            DS, seed.series_image_set_metadata(patient_number=n // 1_000, study=1, series=n % 1_000, instances=(1,))
        )
        for n in range(IMAGE_SETS)
    ]
    with local_pipeline(emulator, clock) as pipeline:
        pages = 0

        def stop_mid_way(event: dict[str, Any]) -> None:
            nonlocal pages
            if event.get("action") == "backfill_page":
                pages += 1
                if pages == STOP_AT_PAGE:
                    run(pipeline, "stop", "bf")

        pipeline.handler_hook = stop_mid_way
        run(pipeline, "start", "bf", "--everything")
        stopped = finish(pipeline)
        admitted_before_resume = sum(journal_sources().values())
        copied_before_resume = pipeline.drain_backlog(timeout=3_600, history=False)
        pipeline.handler_hook = None
        run(pipeline, "resume", "bf")
        resumed = finish(pipeline)
        once = journal_sources()
        copied_after_resume = pipeline.drain_backlog(timeout=3_600, history=False)
        copied = copies_made(emulator, ids)
        run(pipeline, "start", "again", "--everything")
        again = finish(pipeline)
        twice = journal_sources()
        copied_again = pipeline.drain_backlog(timeout=3_600, history=False)
        first, second = (backfill_progress(table_name=TABLE, backfill_id=name) for name in ("bf", "again"))
    assert stopped == ["bf-e0:ABORTED"] and resumed == ["bf-e0:ABORTED", "bf-e1:SUCCEEDED"]
    assert admitted_before_resume == len(copied_before_resume) == (STOP_AT_PAGE - 1) * 50
    executions = copied_before_resume + copied_after_resume
    assert len(executions) == IMAGE_SETS and {r.status for r in executions} == {"SUCCEEDED"}
    assert once == Counter(ids)  # every image set admitted, each once: no gap, no duplicate
    assert copied == Counter({1: IMAGE_SETS})  # every image set copied, each once
    # The second run journals the copies it finds as the pipeline's own output (skipped), nothing else.
    destinations = [r.output["destinationImageSetId"] for r in executions if r.output]
    assert twice == Counter(ids + destinations) and len(destinations) == IMAGE_SETS
    assert "again-e0:SUCCEEDED" in again and copied_again == [] and copies_made(emulator, ids) == copied
    assert first is not None and second is not None
    assert (first["seen"], first["admitted"], first["entriesCOPIED"], first.get("entriesPENDING", 0)) == (
        IMAGE_SETS,
        IMAGE_SETS,
        IMAGE_SETS,
        0,
    )
    assert (second["seen"], second.get("admitted", 0), second["alreadyJournaled"], second["skipped"]) == (
        2 * IMAGE_SETS,
        0,
        IMAGE_SETS,
        IMAGE_SETS,
    )
