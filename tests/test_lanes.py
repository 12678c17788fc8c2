"""New imports first, on the deployed path: the synthesized workflows on moto with the real handler and the
emulator, the backfill started by `ops.cli backfill`, the import through the admission queue's consumer, the
dispatcher's schedule a run a virtual minute. Judged by the emulator's own CopyImageSet records (which call
it accepted, when), not by what the pipeline reports of itself."""

from __future__ import annotations

from collections import Counter

import boto3
import pytest
from workflow import DS, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import PIPELINE, AcceptedCopy, HealthImagingEmulator
from offline.runner import TABLE, LocalPipeline
from ops.cli import backfill_progress, journal_entries, main

pytestmark = pytest.mark.slow
BACKFILLED = 100


def seed_image_sets(emulator: HealthImagingEmulator, count: int) -> list[str]:
    emulator.create_datastore(DS)
    return [
        emulator.seed_image_set(DS, seed.series_image_set_metadata(patient_number=1, study=1, series=n, instances=(1,)))
        for n in range(1, count + 1)
    ]


def backfill_everything(pipeline: LocalPipeline, backfill_id: str) -> None:
    """`ops.cli backfill start --everything`, its pages run to the end: every image set admitted in the bulk lane."""
    arguments = ["--state-machine-arn", pipeline.backfill_state_machine_arn, "--everything"]
    assert main(["backfill", "start", "--table-name", TABLE, "--id", backfill_id, *arguments]) == 0
    sfn = boto3.client("stepfunctions")
    (execution,) = sfn.list_executions(stateMachineArn=pipeline.backfill_state_machine_arn)["executions"]
    assert pipeline.wait(execution["executionArn"]).status == "SUCCEEDED"


def calls_in_order(emulator: HealthImagingEmulator) -> list[AcceptedCopy]:
    """The copies the emulator accepted from the pipeline, in the order of their CopyImageSet calls."""
    return sorted((copy for copy in emulator.accepted if copy.by == PIPELINE), key=lambda copy: copy.accepted_at)


def test_a_new_import_is_copied_within_minutes_ahead_of_a_backfill_under_way_and_everything_once(
    emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    backfilled = seed_image_sets(emulator, BACKFILLED)
    with local_pipeline(emulator, clock) as pipeline:
        backfill_everything(pipeline, "archive")
        clock.join()  # the schedule's first run, then the import 20 s later: the backfill's copies under way
        first_run = pipeline.dispatch()
        clock.sleep(20)
        imported = emulator.seed_image_set(
            DS, seed.series_image_set_metadata(patient_number=2, study=2, series=1, instances=(1,))
        )
        event_at = clock.now()
        not_admitted = pipeline.admit([seed.image_set_created_event(DS, imported)])
        clock.leave()
        records = pipeline.drain_backlog(history=False)
        (entry,) = journal_entries(table_name=TABLE, image_set_id=imported)
        progress = backfill_progress(table_name=TABLE, backfill_id="archive") or {}
    calls = calls_in_order(emulator)
    (new_copy,) = [copy for copy in calls if copy.source_id == imported]
    called_before = {copy.source_id for copy in calls[: calls.index(new_copy)]}
    # A minute of the default quota's slots (16), all bulk: the first run's start budget is real seconds, which a
    # loaded machine can cut short; what it did not start waits for the next run, behind the import.
    started_first = {arn.rsplit(":", 1)[-1].split("-")[0] for arn in first_run}
    assert not_admitted == [] and 0 < len(first_run) <= 16 and started_first <= set(backfilled)
    # Called within two minutes of its event: the next run's first slot, after the copies the first run had
    # planned up to it; ahead of the backfilled copies still waiting (84 of 100).
    assert new_copy.accepted_at - event_at <= 120
    assert called_before == started_first
    assert Counter(copy.source_id for copy in calls) == Counter([*backfilled, imported])  # each exactly once
    assert len(records) == BACKFILLED + 1 and all(record.status == "SUCCEEDED" for record in records)
    assert (entry["lane"], entry["journalStatus"]) == ("live", "COPIED")
    assert (progress["admitted"], progress["entriesCOPIED"]) == (BACKFILLED, BACKFILLED)


def test_an_import_event_for_a_version_waiting_in_the_bulk_lane_is_one_copy_served_first(
    emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    """A backfill admitted it (its `createdBefore` in the future, or its page ran before the event was admitted):
    the event promotes the entry to the live lane, and it is copied once, first."""
    backfilled = seed_image_sets(emulator, 30)
    last = backfilled[-1]
    with local_pipeline(emulator, clock) as pipeline:
        backfill_everything(pipeline, "archive")
        clock.join()  # the event and the schedule's first run at one instant
        not_admitted = pipeline.admit([seed.image_set_created_event(DS, last)] * 2)  # delivered twice
        clock.leave()
        pipeline.drain_backlog(history=False)
        (entry,) = journal_entries(table_name=TABLE, image_set_id=last)
        progress = backfill_progress(table_name=TABLE, backfill_id="archive") or {}
    calls = calls_in_order(emulator)
    assert not_admitted == []
    assert calls[0].source_id == last  # the last the backfill found, the first called
    assert Counter(copy.source_id for copy in calls) == Counter(backfilled)  # one copy each, that one too
    assert (entry["lane"], entry["journalStatus"], entry["backfillId"]) == ("live", "COPIED", "archive")
    assert (progress["admitted"], progress["entriesCOPIED"], progress.get("entriesPENDING")) == (30, 30, 0)
