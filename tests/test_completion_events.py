"""HealthImaging's copy outcome events wake the copies waiting for them (copier/wake.py, AwaitCopy), on the
synthesized workflow with the real handler: what happens when events are dropped, duplicated, late, come
before the copy's token is stored, or announce another writer's copy into the same image set. Whatever the
events do, every copy ends COPIED on the version it produced, once, or fails clearly; an event is never proof."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from function_stubs import emf_metrics
from workflow import DS, Study, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator, copy_outcome_event
from offline.runner import REGION, ExecutionRecord, LocalPipeline, _task_client

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
    assert dropped == 3 and copied_once(emulator, sources, records)
    assert metrics["CompletionEventsMissed"] == 3 and "CopiesWoken" not in metrics
    for record in records:
        assert [e["type"] for e in record.events].count("TaskTimedOut") == 1  # AwaitCopy's fallback wait ran out
        assert (record.output or {})["waitedSeconds"] <= 600  # within maxWaitSeconds


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


def test_an_event_recorded_before_the_token_is_stored_makes_the_copy_look_at_once(
    emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    """The copy lands the instant it is accepted and its event is recorded just before AwaitCopy stores its
    token: the token's conditional write fails, and the copy is looked at without waiting."""
    emulator.copy_seconds = 0
    announced: list[dict[str, Any]] = []
    (source,) = imports(emulator, 1)
    with local_pipeline(emulator, clock) as pipeline:
        pipeline.events.drop = lambda event: True  # delivered below, at the chosen moment instead
        emulator.event_listeners.append(announced.append)
        before_the_token: list[int] = []

        def event_first(params: dict[str, Any], **_: Any) -> None:
            if params.get("Key", {}).get("id", {}).get("S", "").startswith("wake#") and not before_the_token:
                emulator.settle()
                before_the_token.append(len(pipeline.deliver_events(list(announced))))

        _task_client(REGION, "dynamodb").meta.events.register("provide-client-params.dynamodb.UpdateItem", event_first)
        try:
            (record,) = through_the_backlog(pipeline, [source])
        finally:
            _task_client(REGION, "dynamodb").meta.events.unregister(
                "provide-client-params.dynamodb.UpdateItem", event_first
            )
    assert before_the_token == [0] and len(announced) == 1  # delivered, and used, before the token's write
    assert record.status == "SUCCEEDED" and (record.output or {})["status"] == "COPIED"
    assert "DynamoDb.ConditionalCheckFailedException" in record.task_failures()
    assert record.states_entered() == COPY
    assert (record.output or {})["waitedSeconds"] == 0


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
