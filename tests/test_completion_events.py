"""HealthImaging's copy outcome events wake the copies waiting for them (copier/wake.py, AwaitCopy), on the
synthesized workflow with the real handler: what happens when events are dropped, duplicated, late, come
before the copy's token is stored, or announce another writer's copy into the same image set. Whatever the
events do, every copy ends COPIED on the version it produced, once, or fails clearly; an event is never proof."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError
from function_stubs import emf_metrics
from workflow import DS, Study, before_each_task_call, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import CopyEvents, HealthImagingEmulator, copy_outcome_event
from offline.runner import REGION, TABLE, ExecutionRecord, LocalPipeline
from ops.cli import journal_entries

pytestmark = pytest.mark.slow
COPY = [
    "RouteCopy",
    "WaitForCopySlot",
    "StartCopy",
    "AwaitCopy",
    "CheckCopy",
    "CopyFinished?",
    "ReportResult",
    "Copied",
]


def imports(emulator: HealthImagingEmulator, count: int) -> list[str]:
    emulator.create_datastore(DS)
    return [
        emulator.seed_image_set(DS, seed.image_set_metadata(patient_number=n, study=n, series=[1]))
        for n in range(count)
    ]


def through_the_backlog(pipeline: LocalPipeline, sources: list[str], *, primary: bool = True) -> list[ExecutionRecord]:
    events = [seed.image_set_created_event(DS, s, event_id=str(n), is_primary=primary) for n, s in enumerate(sources)]
    assert pipeline.admit(events) == []
    return pipeline.drain_backlog()


def copied_once(emulator: HealthImagingEmulator, sources: list[str], records: list[ExecutionRecord]) -> bool:
    outputs = [r.output or {} for r in records]
    return (
        Counter(copy.source_id for copy in emulator.accepted) == Counter(sources)
        and all(r.status == "SUCCEEDED" and o["status"] == "COPIED" for r, o in zip(records, outputs, strict=True))
        and {(o["destinationImageSetId"], o["destinationVersionId"]) for o in outputs}
        == {(c.destination_id, str(c.destination_version_id)) for c in emulator.accepted}
    )


def test_a_copy_woken_by_its_event_takes_eight_transitions_and_no_poll(
    emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    sources = imports(emulator, 3)
    with local_pipeline(emulator, clock) as pipeline:
        records = through_the_backlog(pipeline, sources)
        metrics = emf_metrics(pipeline.logs.getvalue())
    assert copied_once(emulator, sources, records)
    assert all(r.states_entered() == COPY for r in records)
    assert metrics["CopiesWoken"] == 3 and "CompletionEventsMissed" not in metrics
    # From the copy's end to COPIED: the event's second (a second's delivery, then CheckCopy), not a poll.
    assert all((r.output or {})["waitedSeconds"] <= emulator.copy_seconds + 2 for r in records)


def test_with_every_event_dropped_every_copy_is_still_copied_by_its_fallback_look(
    emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    sources = imports(emulator, 3)
    with local_pipeline(emulator, clock, maxWaitSeconds=600) as pipeline:
        pipeline.events.drop = lambda event: True
        records = through_the_backlog(pipeline, sources)
        metrics = emf_metrics(pipeline.logs.getvalue())
        dropped = len(pipeline.events.dropped)
        journaled = {entry["journalSourceId"]: entry for entry in journal_entries(table_name=TABLE, status="COPIED")}
    assert dropped == 3 and copied_once(emulator, sources, records)
    assert metrics["CompletionEventsMissed"] == 3 and "CopiesWoken" not in metrics
    for record in records:
        assert [e["type"] for e in record.events].count("TaskTimedOut") == 1  # AwaitCopy's fallback wait ran out
        assert (record.output or {})["waitedSeconds"] <= 600  # within maxWaitSeconds
    # When each copy landed: its produced version's own record (GetImageSet's updatedAt), not the look that found
    # it COPIED a fallback wait later: the dispatcher's measure of how long a copy holds a concurrent copy.
    for copy in emulator.accepted:
        entry = journaled[copy.source_id]
        assert float(entry["landedAt"]) == math.ceil(copy.completes_at)
        assert float(entry["updatedAt"]) >= copy.completes_at + 10  # the look came later


@pytest.mark.parametrize("named", ["source", "both"])
def test_events_naming_the_source_or_both_image_sets_wake_each_copy_once(
    clock: VirtualClock, named: CopyEvents
) -> None:
    """AWS defines an event's image set only as the one "associated with the status change", and a copy changes
    its source's status too: whichever image set the events name, the copy is woken by its first event, without
    its fallback wait; the second (naming both) finds the token taken off its item and wakes nothing."""
    emulator = HealthImagingEmulator(clock=clock.now, copy_events=named)
    sources = imports(emulator, 3)
    with local_pipeline(emulator, clock) as pipeline:
        records = through_the_backlog(pipeline, sources)
        pipeline.bus.caught_up()
        metrics = emf_metrics(pipeline.logs.getvalue())
        delivered = [event["detail"]["imageSetId"] for event in pipeline.events.delivered]
    assert copied_once(emulator, sources, records)
    assert set(sources) <= set(delivered) and len(delivered) == 3 * (2 if named == "both" else 1)  # as the switch says
    assert all(r.states_entered() == COPY for r in records)
    assert metrics["CopiesWoken"] == 3
    assert not {"CompletionEventsMissed", "StaleWakeTokens", "AwaitCopyFailures"} & set(metrics)
    assert all((r.output or {})["waitedSeconds"] <= emulator.copy_seconds + 2 for r in records)


def test_duplicated_events_wake_a_copy_once_and_copy_nothing_twice(
    emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    sources = imports(emulator, 2)
    with local_pipeline(emulator, clock) as pipeline:
        pipeline.events.copies = 3  # delivered at least once: here three times each
        records = through_the_backlog(pipeline, sources)
        metrics = emf_metrics(pipeline.logs.getvalue())
        delivered = len(pipeline.events.delivered)
    assert delivered == 6 and copied_once(emulator, sources, records)
    assert metrics["CopiesWoken"] == 2 and metrics["CompletionEventsIgnored"] == 4
    assert all(r.states_entered() == COPY for r in records)


def test_a_late_event_after_the_fallback_look_is_a_stale_token_not_an_error(
    emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    sources = imports(emulator, 1)
    with local_pipeline(emulator, clock) as pipeline:
        pipeline.events.delay_seconds = 200  # long after the 60 s look found the copy COPIED
        records = through_the_backlog(pipeline, sources)
        clock.advance(300)  # the event arrives, for a wait that is over
        pipeline.bus.caught_up()
        metrics = emf_metrics(pipeline.logs.getvalue())
        delivered = len(pipeline.events.delivered)
    assert delivered == 1 and copied_once(emulator, sources, records)
    assert metrics["StaleWakeTokens"] == 1 and metrics["CompletionEventsMissed"] == 1


@pytest.mark.parametrize("named", ["destination", "source"])
def test_an_event_recorded_before_the_token_is_stored_makes_the_copy_look_at_once(
    clock: VirtualClock, named: CopyEvents
) -> None:
    """The copy lands the instant it is accepted and its event (naming either image set) is recorded just before
    AwaitCopy stores its token: the token's transaction is cancelled, and the copy is looked at without waiting."""
    emulator = HealthImagingEmulator(clock=clock.now, copy_seconds=0, copy_events=named)
    announced: list[dict[str, Any]] = []
    (source,) = imports(emulator, 1)
    with local_pipeline(emulator, clock) as pipeline:
        pipeline.events.drop = lambda event: True  # delivered below, at the chosen moment instead
        emulator.event_listeners.append(announced.append)
        before_the_token: list[int] = []

        def event_first(params: dict[str, Any], **_: Any) -> None:
            keys = [item["Update"]["Key"]["id"]["S"] for item in params.get("TransactItems", [])]
            if keys and all(key.startswith("wake#") for key in keys) and not before_the_token:
                emulator.settle()
                before_the_token.append(len(pipeline.deliver_events(list(announced))))

        with before_each_task_call("TransactWriteItems", event_first):
            (record,) = through_the_backlog(pipeline, [source])
        metrics = emf_metrics(pipeline.logs.getvalue())
    output = record.output or {}
    assert before_the_token == [0] and len(announced) == 1  # delivered, and used, before the token's write
    assert announced[0]["detail"]["imageSetId"] == (source if named == "source" else output["destinationImageSetId"])
    assert record.status == "SUCCEEDED" and output["status"] == "COPIED"
    assert "DynamoDb.TransactionCanceledException" in record.task_failures()
    assert record.states_entered() == COPY
    assert (record.output or {})["waitedSeconds"] == 0
    assert "AwaitCopyFailures" not in metrics  # the event came first: not a failure of AwaitCopy's


def test_an_event_about_another_writers_copy_into_the_same_image_set_only_makes_the_copy_look_again(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    """Events carry no version: one for the merge destination may be another writer's. It wakes our copy,
    which finds its own version still COPYING, waits again, and ends COPIED on its own version."""
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:

        def another_writers_event_ten_seconds_on(event: dict[str, Any]) -> None:
            if event.get("action") == "start_copy":
                at = clock.now() + 10
                other = copy_outcome_event(DS, study.primary, "COPIED", at, account=emulator.account, region=REGION)
                pipeline.bus.at(at, lambda: pipeline.deliver_events([other]))

        pipeline.handler_hook = another_writers_event_ten_seconds_on
        (record,) = through_the_backlog(pipeline, [study.consistent], primary=False)
        metrics = emf_metrics(pipeline.logs.getvalue())
    output = record.output or {}
    (ours,) = emulator.accepted_copies(study.consistent)
    assert (output["status"], output["destinationImageSetId"]) == ("COPIED", study.primary)
    assert output["destinationVersionId"] == str(ours.destination_version_id)
    states = record.states_entered()
    assert states.count("AwaitCopy") == 2 and states.count("CheckCopy") == 2  # woken early, waited again
    assert metrics["CopiesWoken"] == 2


def test_a_wake_write_refused_for_good_is_looked_at_a_bounded_number_of_times_a_copy_hour(clock: VirtualClock) -> None:
    """AwaitCopy's write refused every time (AccessDenied after a key policy change, say): each refusal is looked
    at once, then a growing wait (the fallback's, up to pollMaxSeconds) before AwaitCopy tries again, not the
    loop AwaitCopy -> CheckCopy -> AwaitCopy with no wait (an invocation and a GetImageSet each turn, until
    maxWaitSeconds). Counted by the execution's own history and the emulator's GetImageSet calls."""
    emulator = HealthImagingEmulator(clock=clock.now, copy_seconds=1800)  # half an hour in AwaitCopy's loop
    (source,) = imports(emulator, 1)
    access_denied = type("AccessDeniedException", (ClientError,), {})  # as botocore names a modeled error
    refused: list[str] = []

    def refuse(params: dict[str, Any], **_: Any) -> None:
        refused.append(params["TransactItems"][0]["Update"]["Key"]["id"]["S"])
        error = {"Code": "AccessDeniedException", "Message": "not authorized to perform: dynamodb:UpdateItem"}
        answer = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "refused"}}
        raise access_denied(answer, "TransactWriteItems")  # type: ignore[arg-type]

    looks: list[float] = []

    def no_hot_loop(event: dict[str, Any]) -> None:  # a hot loop never moves the virtual clock: stop it here
        if event.get("action") == "check_copy":
            looks.append(clock.now())
            if len(looks) > 200:
                raise RuntimeError("AwaitCopy -> CheckCopy looped without waiting")

    with local_pipeline(emulator, clock) as pipeline:
        pipeline.handler_hook = no_hot_loop
        with before_each_task_call("TransactWriteItems", refuse):
            (record,) = through_the_backlog(pipeline, [source])
        metrics = emf_metrics(pipeline.logs.getvalue())
    states = record.states_entered()
    output = record.output or {}
    assert record.status == "SUCCEEDED" and output["status"] == "COPIED"  # found by its looks all the same
    (copy,) = emulator.accepted
    # Every AwaitCopy was refused (the fault fired each time), and each refusal was looked at once.
    assert len(refused) == states.count("AwaitCopy") == states.count("CheckCopy") == len(looks) > 5
    assert set(refused) == {f"wake#{copy.destination_id}"}
    assert record.task_failures().count("DynamoDb.AccessDeniedException") == len(refused)
    assert metrics["AwaitCopyFailures"] == len(refused)
    assert states.count("WaitBeforeAwaitingAgain") == len(refused) - 1
    # At most one look per pollMaxSeconds (120 s) once the waits have grown: 30 a copy-hour, not thousands.
    copy_hours = (looks[-1] - looks[0]) / 3600
    assert copy.completes_at - copy.accepted_at <= looks[-1] - looks[0] + 120
    assert len(looks) <= 1 + math.ceil(copy_hours * 3600 / 120)
    get_image_set = [status for operation, status in emulator.calls if operation == "GetImageSet"]
    assert len(get_image_set) <= len(looks) + 2  # a look is one GetImageSet (StartCopy's own reads besides)
