"""The backlog and its paced dispatcher, on the synthesized workflow: events admitted from the queue,
started a minute's worth at a time at the quota's pace, nothing started twice, nothing left behind."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
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


def admitted_without_a_run(pipeline: LocalPipeline, clock: VirtualClock) -> None:
    """The seeded image sets into the backlog with no dispatch run (the admission queue's consumer runs one at
    once): reconciliation's sweep, past its grace period, finds them without a journal entry."""
    clock.advance(600)
    pipeline.call_function({"action": "reconcile"})


def dispatcher_run(pipeline: LocalPipeline) -> dict[str, Any]:
    """One run of the dispatcher's schedule rule, as the function answers it (names started, ran)."""
    answer: dict[str, Any] = pipeline.call_function({"action": "dispatch"})
    return answer


def crash_at_validate(event: dict[str, object]) -> None:
    if event.get("action") == "validate":
        raise RuntimeError("Runtime.ExitError")


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
        import copier.dispatcher  # the pipeline's fresh modules
        import copier.journal

        read_backlog = copier.journal.waiting
        overlapping: list[object] = []

        def backlog_read_while_another_run_arrives(lane: object, limit: int) -> list[dict[str, object]]:
            if not overlapping:
                overlapping.append("arriving")
                overlapping[0] = copier.dispatcher.dispatch()  # a duplicated or late schedule delivery
            return read_backlog(lane, limit)

        copier.journal.waiting = backlog_read_while_another_run_arrives  # type: ignore[assignment]
        pipeline.admit(events(sources))  # the idle schedule: the consumer's own run starts them
        copier.journal.waiting = read_backlog  # type: ignore[assignment]
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
        import copier.errors  # the pipeline's fresh modules
        import copier.journal

        original = copier.journal.mark_started

        def lost_mark(*args: object, **kwargs: object) -> None:
            raise copier.errors.TableUnavailable("DynamoDB transact_write_items failed: InternalServerError")

        clock.join()  # the execution stays at its first steps while the runs happen
        copier.journal.mark_started = lost_mark  # type: ignore[assignment]
        pipeline.admit(events([source]))  # the consumer's own run starts it, then dies marking it
        copier.journal.mark_started = original  # type: ignore[assignment]
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
        readmitted = retry(table_name=TABLE).readmitted
        (retried,) = pipeline.drain_backlog()
    assert crashed.status == "FAILED" and retried.name == f"{source}-1-d1"
    assert (entry["journalStatus"], entry["error"]) == ("FAILED", "ExecutionFailed")
    assert len(readmitted) == 1 and retried.status == "SUCCEEDED"
    assert len(quota_emulator.accepted_copies(source)) == 1


def test_every_run_writes_each_lanes_age_even_with_nothing_pending(clock: VirtualClock) -> None:
    """The dashboard's backlog ages: a run that finds nothing still writes each lane's oldest pending age, 0 (the
    DispatcherSilent alarm's heartbeat is LiveBacklogLateSeconds: tests/test_backlog_lateness.py)."""
    with local_pipeline(clock=clock) as pipeline:
        runs = [pipeline.dispatch() for _ in range(2)]
        documents = emf_documents(pipeline.logs.getvalue())
    ages = [[d[f"{lane}OldestPendingAgeSeconds"] for lane in ("Live", "Bulk")] for d in documents if "CopyPace" in d]
    assert runs == [[], []] and ages == [[[0.0], [0.0]], [[0.0], [0.0]]]


def test_a_run_plans_no_faster_than_the_read_budgets_allow_and_says_which_binds(clock: VirtualClock) -> None:
    """merge-into-primary reads GetImageSet three times a copy: at the default budget (24) that allows 8 copies a
    second, under copyRatePerSecond 10. The run's pace and the slots a copy by hand reserves follow it."""
    with local_pipeline(clock=clock, copyPolicy="merge-into-primary", copyRatePerSecond=10) as pipeline:
        pipeline.dispatch()
        documents = [d for d in emf_documents(pipeline.logs.getvalue()) if "PlannedCopyRate" in d]
        pacing_item = boto3.resource("dynamodb").Table(TABLE).get_item(Key={"id": "pacing#copy-image-set"})["Item"]
        first = pipeline.call_function({"action": "reserve_slot", "slot": {"reservations": 0}})
        second = pipeline.call_function({"action": "reserve_slot", "slot": {"reservations": 0}})
    (document,) = documents
    assert document["PlannedCopyRate"] == [8.0]
    assert document["CopyRateAllowedByGetImageSet"] == [8.0]
    assert document["CopyRateAllowedByCopyImageSet"] == [10.0]
    assert float(pacing_item["pace"]) == 8.0
    assert second["at"] - first["at"] == pytest.approx(1 / 8)


def test_a_run_that_dies_holding_the_lease_stops_every_run_until_the_lease_ends(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    """A run killed mid-way (the function's timeout) never gives its lease back: the runs before `leaseUntil`
    do nothing, the first one at it proceeds."""
    (source,) = seed_imports(quota_emulator, 1)
    with local_pipeline(quota_emulator, clock) as pipeline:
        import copier.dispatcher.lease  # the pipeline's fresh modules
        import copier.journal
        import copier.table

        killed: list[str] = []
        lost: list[str] = []

        def nothing_lands_once_killed(model: Any, **_: object) -> None:
            if killed:
                lost.append(model.name)
                raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

        copier.table.client().meta.events.register_first("before-call.dynamodb", nothing_lands_once_killed)
        read_backlog = copier.journal.waiting

        def killed_reading_the_backlog(lane: object, limit: int) -> list[dict[str, object]]:
            killed.append("timed out")  # with the lease taken
            return read_backlog(lane, limit)

        copier.journal.waiting = killed_reading_the_backlog  # type: ignore[assignment]
        with pytest.raises(Exception) as died:
            dispatcher_run(pipeline)
        copier.journal.waiting = read_backlog  # type: ignore[assignment]
        killed.clear()
        pipeline.admit(events([source]))  # the idle schedule: the consumer's own run, refused by the lease
        at_admission = executions(pipeline)
        clock.advance(copier.dispatcher.lease.LEASE_SECONDS - 1)
        before = dispatcher_run(pipeline)
        (waiting,) = journal_entries(table_name=TABLE, status="PENDING")
        clock.advance(1)  # leaseUntil
        at_the_end = dispatcher_run(pipeline)
        (record,) = pipeline.drain_backlog()
    assert type(died.value).__name__ == "TableUnavailable" and "UpdateItem" in lost  # the give-back never landed
    assert at_admission == [] and (before["ran"], before["started"]) == (False, [])
    assert waiting["journalSourceId"] == source
    assert (at_the_end["ran"], at_the_end["started"]) == (True, [f"{source}-1-d0"])
    assert record.status == "SUCCEEDED" and len(quota_emulator.accepted_copies(source)) == 1


def test_a_name_whose_execution_still_runs_is_taken_as_started(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    """StartExecution refuses a name in use with another input (an execution a dispatcher of another version
    started, mid-upgrade, writing its input another way): that execution, running, copies the entry. It is
    taken as started, and no other execution, nor a second CopyImageSet, follows."""
    (source,) = seed_imports(quota_emulator, 1)
    name = f"{source}-1-d0"
    with local_pipeline(quota_emulator, clock) as pipeline:
        admitted_without_a_run(pipeline, clock)
        clock.join()  # the execution stays at its first steps while the run happens
        theirs = pipeline.start({"admitted": {"sourceVersionId": "1", "sourceImageSetId": source}}, name=name)
        run = dispatcher_run(pipeline)
        (entry,) = journal_entries(table_name=TABLE, image_set_id=source)
        next_run = dispatcher_run(pipeline)  # the next minute's, while that execution still waits for its slot
        clock.leave()
        record = pipeline.wait(theirs)
        rest = pipeline.drain_backlog()
        started = executions(pipeline)
        (copied,) = journal_entries(table_name=TABLE, image_set_id=source)
    assert (run["started"], next_run["started"]) == ([name], [])
    assert (entry["journalStatus"], entry["executionId"]) == ("STARTED", theirs)
    assert record.status == "SUCCEEDED" and (record.output or {})["status"] == "COPIED"
    assert rest == [] and started == [name] and copied["journalStatus"] == "COPIED"
    assert quota_emulator.copy_image_set_calls() == [200]


def test_a_name_whose_execution_ended_moves_to_the_next_name(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    """The name's execution ended without copying (here started by hand, as a run that died before marking the
    entry would have, and crashed at ValidateInput past its retries): the entry is started again under the next
    name, and copied once."""
    (source,) = seed_imports(quota_emulator, 1)
    with local_pipeline(quota_emulator, clock) as pipeline:
        admitted_without_a_run(pipeline, clock)
        pipeline.handler_hook = crash_at_validate
        ended = pipeline.run({"admitted": {"sourceImageSetId": source, "sourceVersionId": "1"}}, name=f"{source}-1-d0")
        pipeline.handler_hook = None
        (record,) = pipeline.drain_backlog()
    assert ended.status == "FAILED"
    assert (record.name, record.status) == (f"{source}-1-d1", "SUCCEEDED")
    assert quota_emulator.copy_image_set_calls() == [200]


def test_a_name_whose_execution_succeeded_with_the_entry_still_pending_moves_to_the_next_name(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    """The name's execution copied and succeeded, but the entry is PENDING (its journal write was lost): the
    entry is not left STARTED forever; the next name's execution meets the copy record, makes no second
    CopyImageSet, and writes the outcome."""
    (source,) = seed_imports(quota_emulator, 1)
    with local_pipeline(quota_emulator, clock) as pipeline:
        admitted_without_a_run(pipeline, clock)
        first = pipeline.run({"admitted": {"sourceImageSetId": source, "sourceVersionId": "1"}}, name=f"{source}-1-d0")
        (landed,) = journal_entries(table_name=TABLE, image_set_id=source)
        boto3.client("dynamodb").update_item(
            TableName=TABLE,
            Key={"id": {"S": f"journal#{source}#1"}},
            UpdateExpression="SET journalStatus = :pending",
            ExpressionAttributeValues={":pending": {"S": "PENDING"}},
        )
        (record,) = pipeline.drain_backlog()
        (entry,) = journal_entries(table_name=TABLE, image_set_id=source)
    assert (first.status, landed["journalStatus"]) == ("SUCCEEDED", "COPIED")
    assert (record.name, record.status, (record.output or {})["status"]) == (f"{source}-1-d1", "SUCCEEDED", "COPIED")
    assert entry["journalStatus"] == "COPIED"
    assert quota_emulator.copy_image_set_calls() == [200]


def test_started_entries_whose_executions_timed_out_or_were_aborted_fail_and_a_running_one_is_left_alone(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    """Three executions started by one run, their entries STARTED: the first held at its first function step
    (StartCopy: the dispatcher's input is a plan with its slot) and still running when the dispatcher looks, an
    hour on; the two after it, waiting for their slots, one aborted by hand and one timed out. The ended ones are
    settled FAILED, for `ops.cli retry`; the running one is left alone."""
    sources = seed_imports(quota_emulator, 3)
    release = threading.Event()
    held: list[str] = []
    reached = threading.Event()

    def held_at_start(event: dict[str, Any]) -> None:
        if event.get("action") == "start_copy":
            held.append(event["request"]["sourceImageSetId"])
            reached.set()
            release.wait()

    with local_pipeline(quota_emulator, clock) as pipeline:
        admitted_without_a_run(pipeline, clock)
        pipeline.handler_hook = held_at_start
        try:
            started = {arn.rsplit(":", 1)[1].split("-")[0]: arn for arn in pipeline.dispatch()}
            assert reached.wait(timeout=60), "no execution reached StartCopy"
            (running,) = held  # the first slot's; the others wait for theirs while it is held
            aborted, timed_out = (source for source in sources if source != running)
            boto3.client("stepfunctions").stop_execution(executionArn=started[aborted])
            pipeline.time_out(started[timed_out])
            clock.advance(3_700)  # past the hour a copy may legitimately take: their waits end, and so do they
            ended = [pipeline.wait(started[source]).status for source in (aborted, timed_out)]
            dispatcher_run(pipeline)  # settles what ended
            entries = {s: journal_entries(table_name=TABLE, image_set_id=s) for s in (aborted, timed_out, running)}
            still_held = list(held)
        finally:
            release.set()  # never leave an execution held
        record = pipeline.wait(started[running])
    assert ended == ["ABORTED", "TIMED_OUT"] and still_held == [running]  # neither ended one reached StartCopy
    assert {s: [(e["journalStatus"], e.get("error")) for e in found] for s, found in entries.items()} == {
        aborted: [("FAILED", "ExecutionAborted")],
        timed_out: [("FAILED", "ExecutionTimedOut")],
        running: [("STARTED", None)],
    }
    assert record.status == "SUCCEEDED" and quota_emulator.copy_image_set_calls() == [200]


def test_the_backlogs_age_is_how_long_its_oldest_entry_has_waited(
    quota_emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    """LiveOldestPendingAgeSeconds (the dashboard's) and LiveBacklogLateSeconds (the LiveBacklogLate alarm's),
    written by the dispatcher alone (a reconciliation sweep writes neither): no copy was planned ahead of these
    entries, so they were due when admitted, and are as late as they are old."""
    seed_imports(quota_emulator, 2)
    with local_pipeline(quota_emulator, clock) as pipeline:
        admitted_without_a_run(pipeline, clock)
        clock.advance(90)
        for _ in range(20):  # copies started by hand book the schedule's next 80 s: this run starts none
            pipeline.call_function({"action": "reserve_slot"})
        written = len(pipeline.logs.getvalue())
        run = dispatcher_run(pipeline)
        sweep = pipeline.call_function({"action": "reconcile"})
        documents = emf_documents(pipeline.logs.getvalue()[written:])
        pending = journal_entries(table_name=TABLE, status="PENDING")
    ages = [d["LiveOldestPendingAgeSeconds"] for d in documents if "LiveOldestPendingAgeSeconds" in d]
    late = [d["LiveBacklogLateSeconds"] for d in documents if "LiveBacklogLateSeconds" in d]
    assert (run["started"], sweep["missed"], sweep["promoted"], len(pending)) == ([], 0, 0, 2)
    assert ages == [[90.0]]
    assert late == [[90.0]]
    assert run["oldest_pending_seconds"] == 90.0
