"""The backlog and its paced dispatcher, on the synthesized workflow: events admitted from the queue,
started a minute's worth at a time at the quota's pace, nothing started twice, nothing left behind."""

from __future__ import annotations

import itertools
from collections import Counter

import boto3
import pytest
from function_stubs import emf_documents
from workflow import DS, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import TABLE, LocalPipeline
from ops.cli import journal_entries

pytestmark = pytest.mark.slow
QUOTA = 0.25


@pytest.fixture
def quota_emulator(clock: VirtualClock) -> HealthImagingEmulator:
    """CopyImageSet throttles past 0.25/s, burst 1, as the real quota does."""
    emulator = HealthImagingEmulator(clock=clock.now, copy_rate_per_second=QUOTA, copy_burst=1)
    emulator.create_datastore(DS)
    return emulator


def seed_imports(emulator: HealthImagingEmulator, count: int) -> list[str]:
    return [
        emulator.seed_image_set(DS, seed.image_set_metadata(patient_number=n, study=n, series=[1]))
        for n in range(count)
    ]


def events(sources: list[str]) -> list[dict[str, object]]:
    return [seed.image_set_created_event(DS, s, event_id=str(n)) for n, s in enumerate(sources)]


def executions(pipeline: LocalPipeline) -> list[str]:
    listed = boto3.client("stepfunctions").list_executions(stateMachineArn=pipeline.state_machine_arn)
    return [execution["name"] for execution in listed["executions"]]


def test_a_burst_waits_in_the_backlog_and_is_started_a_minute_of_slots_at_a_time(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    sources = seed_imports(quota_emulator, 40)
    with local_pipeline(quota_emulator, clock) as pipeline:
        clock.join()  # the burst and the first scheduled run at one instant
        not_admitted = pipeline.admit(events(sources) + events(sources[:5]))  # five delivered twice
        at_once = executions(pipeline)  # the schedule was idle: the first batch's consumer dispatched it
        first_run = pipeline.dispatch()
        waiting = journal_entries(table_name=TABLE, status="PENDING")
        clock.leave()
        records = pipeline.drain_backlog()
    assert not_admitted == []
    assert len(at_once) == 10
    # Slots 1/0.24 s apart from 2 s on, up to the next run's first slot (60 + 2 + 5 s): 16 in all; the
    # other 24 wait, durably, as PENDING.
    assert (len(first_run), len(waiting)) == (6, 24)
    assert all(r.status == "SUCCEEDED" and (r.output or {})["status"] == "COPIED" for r in records)
    assert len(records) == 40
    assert Counter(copy.source_id for copy in quota_emulator.accepted) == Counter(sources)  # each once
    assert 429 not in quota_emulator.copy_image_set_calls()  # never throttled: the calls land on their slots
    accepted_at = sorted(copy.completes_at - quota_emulator.copy_seconds for copy in quota_emulator.accepted)
    assert min(later - earlier for earlier, later in itertools.pairwise(accepted_at)) >= 1 / QUOTA


def test_a_copy_started_by_hand_during_a_backlog_takes_the_next_free_slot(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    sources = seed_imports(quota_emulator, 31)
    by_hand, backlog = sources[0], sources[1:]
    with local_pipeline(quota_emulator, clock) as pipeline:
        clock.join()
        pipeline.admit(events(backlog))
        pipeline.dispatch()  # with the admission's own run: a minute of slots handed to 16 executions
        manual = pipeline.start({"datastoreId": DS, "sourceImageSetId": by_hand})
        clock.leave()
        record = pipeline.wait(manual)
        rest = pipeline.drain_backlog()
    assert record.status == "SUCCEEDED", record.cause
    assert len(rest) == 30 and all(r.status == "SUCCEEDED" for r in rest)
    order = [copy.source_id for copy in sorted(quota_emulator.accepted, key=lambda c: c.completes_at)]
    # Among the minute already handed out (the reservations race), ahead of the 14 copies still in the backlog.
    assert order.index(by_hand) < 17
    assert 429 not in quota_emulator.copy_image_set_calls()


def test_two_runs_at_once_start_nothing_twice(quota_emulator: HealthImagingEmulator, clock: VirtualClock) -> None:
    sources = seed_imports(quota_emulator, 3)
    with local_pipeline(quota_emulator, clock) as pipeline:
        import copier.dispatcher  # the pipeline's fresh module

        read_backlog = copier.dispatcher.journal.pending
        overlapping: list[object] = []

        def backlog_read_while_another_run_arrives(limit: int) -> list[dict[str, object]]:
            if not overlapping:
                overlapping.append("arriving")
                overlapping[0] = copier.dispatcher.dispatch()  # a duplicated or late schedule delivery
            return read_backlog(limit)

        copier.dispatcher.journal.pending = backlog_read_while_another_run_arrives  # type: ignore[assignment]
        pipeline.admit(events(sources))  # the idle schedule: the consumer's own run starts them
        copier.dispatcher.journal.pending = read_backlog  # type: ignore[assignment]
        records = pipeline.drain_backlog()
    (second,) = overlapping
    assert (second.started, second.ran) == ([], False)  # type: ignore[attr-defined]  # the lease
    assert len(records) == 3 and all(r.status == "SUCCEEDED" for r in records)
    assert Counter(copy.source_id for copy in quota_emulator.accepted) == Counter(sources)


def test_a_run_that_dies_between_starting_and_marking_starts_nothing_twice(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    (source,) = seed_imports(quota_emulator, 1)
    with local_pipeline(quota_emulator, clock) as pipeline:
        import copier.dispatcher  # the pipeline's fresh module

        original = copier.dispatcher.journal.mark_started

        def lost_mark(*args: object, **kwargs: object) -> None:
            raise copier.dispatcher.TableUnavailable("DynamoDB transact_write_items failed: InternalServerError")

        clock.join()  # the execution stays at its first steps while the runs happen
        copier.dispatcher.journal.mark_started = lost_mark  # type: ignore[assignment]
        pipeline.admit(events([source]))  # the consumer's own run starts it, then dies marking it
        copier.dispatcher.journal.mark_started = original  # type: ignore[assignment]
        (pending,) = journal_entries(table_name=TABLE, status="PENDING")
        # The next run (the lease was given back): the entry is still PENDING, its execution RUNNING, held
        # before its call by the clock this test holds (advancing it would let the execution record itself).
        again = pipeline.dispatch()
        clock.leave()
        (record,) = [pipeline.wait(arn) for arn in again]
        executions = boto3.client("stepfunctions").list_executions(stateMachineArn=pipeline.state_machine_arn)
    assert pending["journalSourceId"] == source
    assert record.status == "SUCCEEDED" and record.name == f"{source}-1-d0"  # the same execution, adopted
    assert len(executions["executions"]) == 1
    assert len(quota_emulator.accepted_copies(source)) == 1


def test_an_execution_that_ends_without_a_word_is_marked_failed_for_retry(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    """An execution that ends before it can record anything (aborted by hand, timed out, or here: the
    function crashing at the dispatched execution's first step, StartCopy, and at RecordFailure, past their
    retries) must not leave the journal saying STARTED forever."""
    from ops.cli import retry

    (source,) = seed_imports(quota_emulator, 1)

    def crash_before_any_record(event: dict[str, object]) -> None:
        if event.get("action") in ("start_copy", "record_failure"):
            raise RuntimeError("Runtime.ExitError")

    with local_pipeline(quota_emulator, clock) as pipeline:
        pipeline.handler_hook = crash_before_any_record
        pipeline.admit(events([source]))  # the consumer's own run starts it
        (crashed,) = pipeline.drain_backlog()
        pipeline.handler_hook = None
        clock.advance(3_700)  # past the hour a copy may legitimately take
        assert pipeline.dispatch() == []  # this run settles it: FAILED, not PENDING
        (entry,) = journal_entries(table_name=TABLE, image_set_id=source)
        readmitted, _ = retry(table_name=TABLE)
        (retried,) = pipeline.drain_backlog()
    assert crashed.status == "FAILED" and retried.name == f"{source}-1-d1"
    assert (entry["journalStatus"], entry["error"]) == ("FAILED", "ExecutionFailed")
    assert len(readmitted) == 1 and retried.status == "SUCCEEDED"
    assert len(quota_emulator.accepted_copies(source)) == 1


def test_every_run_writes_the_backlogs_age_even_with_nothing_pending(clock: VirtualClock) -> None:
    """The DispatcherSilent alarm's heartbeat: a run that finds nothing still writes OldestPendingAgeSeconds."""
    with local_pipeline(clock=clock) as pipeline:
        runs = [pipeline.dispatch() for _ in range(2)]
        documents = emf_documents(pipeline.logs.getvalue())
    ages = [d["OldestPendingAgeSeconds"] for d in documents if "OldestPendingAgeSeconds" in d]
    assert runs == [[], []] and ages == [[0.0], [0.0]]
