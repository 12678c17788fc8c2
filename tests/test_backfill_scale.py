"""The backfill at scale: existing image sets on the emulator, through the synthesized backfill workflow
(moto's Step Functions, the real handler): stopped mid-way and resumed, then run again. Every image set is
admitted to the copy backlog exactly once, with no gap, and the second run admits nothing.

1,000 image sets in `make test`; `BACKFILL_TEST_IMAGE_SETS=10000` runs the 10,000 of the target, which takes
moto's DynamoDB about 10 minutes (about 50 ms of moto per image set admitted: README, "Backfill"). The
copying half (dispatcher, copy workflow) runs end to end in tests/test_backfill_workflow.py, on 60."""

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


def finish(pipeline: LocalPipeline) -> list[str]:
    sfn = boto3.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=pipeline.backfill_state_machine_arn)["executions"]
    return sorted(f"{e['name']}:{pipeline.wait(e['executionArn'], timeout=1_800).status}" for e in listed)


def test_every_image_set_is_admitted_once_through_a_stop_a_resume_and_a_second_run(
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
        pipeline.handler_hook = None
        run(pipeline, "resume", "bf")
        resumed = finish(pipeline)
        once = journal_sources()
        run(pipeline, "start", "again", "--everything")
        again = finish(pipeline)
        twice = journal_sources()
        first, second = (backfill_progress(table_name=TABLE, backfill_id=name) for name in ("bf", "again"))
    assert stopped == ["bf-e0:ABORTED"] and resumed == ["bf-e0:ABORTED", "bf-e1:SUCCEEDED"]
    assert admitted_before_resume == (STOP_AT_PAGE - 1) * 50
    assert once == Counter(ids)  # every image set, each once: no gap, no duplicate
    assert "again-e0:SUCCEEDED" in again and twice == once  # a second backfill admits nothing
    assert first is not None and second is not None
    assert (first["seen"], first["admitted"], first["entriesPENDING"]) == (IMAGE_SETS, IMAGE_SETS, IMAGE_SETS)
    assert (second["seen"], second.get("admitted", 0), second["alreadyJournaled"]) == (IMAGE_SETS, 0, IMAGE_SETS)
