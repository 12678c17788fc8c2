"""Fault injection on the emulator + local runner: nothing lost, nothing copied twice.

Each test checks the three promises: every requested copy ends COPIED or in a clear,
reported failure; the service accepted exactly one CopyImageSet per logical copy; no
execution is left running or silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws
from workflow import DS, Study, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator, copy_outcome_event
from offline.runner import ExecutionRecord

pytestmark = pytest.mark.slow
CLEAR_FAILURES = {
    "ImageSetNotFound",
    "ImageSetVersionChanged",
    "CopyFailed",
    "ForceRefused",
    "CopyWaitTimedOut",
    "InvalidCopyRequest",
    "PrimaryImageSetNotFound",
    "InconsistentMetadata",
    "CopyConflict",
}


def console(source: str, **fields: object) -> dict[str, object]:
    return {"datastoreId": DS, "sourceImageSetId": source, **fields}


def ended_well(record: ExecutionRecord) -> bool:
    if record.status == "SUCCEEDED":
        return (record.output or {}).get("status") in ("COPIED", "SKIPPED")
    return record.status == "FAILED" and record.error in CLEAR_FAILURES and bool(record.cause)


def accepted_per_source(emulator: HealthImagingEmulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for copy in emulator.accepted:
        counts[copy.source_id] = counts.get(copy.source_id, 0) + 1
    return counts


def once_in(hook_target: Any, name: str, raise_: Callable[[], Exception], *, after_call: bool = True) -> list[str]:
    """Make hook_target.name raise once (after doing its work if after_call); returns the faults raised, for the
    test to check it fired."""
    original = getattr(hook_target, name)
    raised: list[str] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs) if after_call or raised else None
        if not raised:
            fault = raise_()
            raised.append(type(fault).__name__)
            raise fault
        return result

    setattr(hook_target, name, wrapper)
    return raised


def test_throttling_storm(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    emulator.faults.copy_faults.extend(["error:ThrottlingException"] * 6)
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(console(study.primary))
    assert record.status == "SUCCEEDED" and ended_well(record)
    assert accepted_per_source(emulator) == {study.primary: 1}


def test_internal_error_after_the_copy_was_accepted(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    emulator.faults.copy_faults.append("accept-then-500")
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(console(study.primary))
    assert record.status == "SUCCEEDED", record.cause
    assert "ConfirmCopy" in record.states_entered()
    assert accepted_per_source(emulator) == {study.primary: 1}
    assert (record.output or {})["destinationImageSetId"] == emulator.accepted[0].destination_id


def test_timeout_after_the_copy_was_accepted(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    emulator.faults.copy_faults.append("accept-then-timeout")
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(console(study.consistent, destinationImageSetId=study.primary))
    assert record.status == "SUCCEEDED", record.cause
    assert accepted_per_source(emulator) == {study.consistent: 1}
    assert emulator.image_sets[(DS, study.primary)].version_id == 2
    # The one call went unanswered (status 0), ConfirmCopy proved it ours, and no second call followed.
    assert emulator.copy_image_set_calls() == [0] and emulator.faults.copy_faults == []
    assert "ConfirmCopy" in record.states_entered() and (record.output or {})["destinationVersionId"] == "2"


def test_internal_error_before_acceptance_starts_the_copy_again(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    emulator.faults.copy_faults.append("error:InternalServerException")
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(console(study.consistent, destinationImageSetId=study.primary))
    assert record.status == "SUCCEEDED", record.cause
    states = record.states_entered()
    assert "ConfirmCopy" in states and states.count("StartCopy") == 2  # proved not accepted, then started again
    assert accepted_per_source(emulator) == {study.consistent: 1}


@pytest.mark.parametrize("recorded", [False, True], ids=["before-the-answer-was-recorded", "after"])
def test_function_crashes_after_the_copy_was_accepted(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study, recorded: bool
) -> None:
    """A snapshot: the new image set is found by its series and content (not recorded), or read
    from the copy record (recorded, Powertools' result lost)."""
    with local_pipeline(emulator, clock) as pipeline:
        import copier.copy_record  # the pipeline's freshly loaded module

        crashed = once_in(
            copier.copy_record,
            "mark_accepted",
            lambda: type("Sandbox.Timedout", (Exception,), {})("timed out"),
            after_call=recorded,
        )
        record = pipeline.run(console(study.primary))
    assert crashed == ["Sandbox.Timedout"]
    assert record.status == "SUCCEEDED", record.cause
    assert "Sandbox.Timedout" in record.task_failures()
    assert ("ConfirmCopy" in record.states_entered()) is not recorded
    assert accepted_per_source(emulator) == {study.primary: 1}
    assert (record.output or {})["destinationImageSetId"] == emulator.accepted[0].destination_id


def test_function_times_out_mid_copy_leaving_its_idempotency_record_in_progress(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    """A real timeout kills the process: Powertools cannot clear its INPROGRESS record, which
    blocks retries until the invocation's remaining time has passed; then the CALLING copy record
    makes the retry confirm instead of copying again."""
    with local_pipeline(emulator, clock) as pipeline:
        import copier.copy_record
        import copier.copy_start

        pipeline.remaining_millis = 1  # the killed invocation had 1 ms left: its record expires at once
        kept_in_progress = once_in(
            copier.copy_start.persistence(), "delete_record", lambda: RuntimeError("process killed"), after_call=False
        )
        # Killed after the call, before its answer reached the copy record.
        killed = once_in(
            copier.copy_record,
            "mark_accepted",
            lambda: type("Sandbox.Timedout", (Exception,), {})("timed out"),
            after_call=False,
        )
        record = pipeline.run(console(study.consistent, destinationImageSetId=study.primary))
    assert (killed, kept_in_progress) == (["Sandbox.Timedout"], ["RuntimeError"])  # both faults fired
    assert record.status == "SUCCEEDED", record.cause
    assert "ConfirmCopy" in record.states_entered()
    assert accepted_per_source(emulator) == {study.consistent: 1}
    assert emulator.copy_image_set_calls() == [200]  # the call that was accepted, and no other


def test_duplicate_events_copy_once(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    event = seed.image_set_created_event(DS, study.primary)
    with local_pipeline(emulator, clock) as pipeline:
        arns = [pipeline.start(event) for _ in range(3)]  # concurrently
        records = [pipeline.wait(arn) for arn in arns]
        records.append(pipeline.run(event))  # and once more, later
    assert all(r.status == "SUCCEEDED" for r in records), [r.cause for r in records]
    assert len({(r.output or {})["destinationImageSetId"] for r in records}) == 1
    assert accepted_per_source(emulator) == {study.primary: 1}


def test_out_of_order_event_for_an_older_version_fails_clearly(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    emulator.schedule_metadata_update(clock.now(), study.primary)  # the image set moved on since the event
    clock.advance(60)
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(seed.image_set_created_event(DS, study.primary, version="1"))
    assert (record.status, record.error) == ("FAILED", "ImageSetVersionChanged") and ended_well(record)
    assert "version 2, not 1" in (record.cause or "")
    assert emulator.accepted == []


def test_two_copies_into_one_destination_at_once(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    second = emulator.seed_image_set(
        DS, seed.series_image_set_metadata(patient_number=1, study=1, series=1, instances=(9, 10))
    )
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        arns = [
            pipeline.start(seed.image_set_created_event(DS, source, is_primary=False))
            for source in (study.consistent, second)
        ]
        records = [pipeline.wait(arn) for arn in arns]
    assert all(r.status == "SUCCEEDED" for r in records), [r.cause for r in records]
    assert "CopyConflict" in records[0].task_failures() + records[1].task_failures()
    assert accepted_per_source(emulator) == {study.consistent: 1, second: 1}
    assert emulator.image_sets[(DS, study.primary)].version_id == 3


def test_destination_deleted_mid_copy(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    def delete_on_first_check(event: dict[str, Any]) -> None:
        if event.get("action") == "check_copy" and emulator.image_sets[(DS, study.primary)].state != "DELETED":
            emulator.delete_image_set(DS, study.primary)

    with local_pipeline(emulator, clock) as pipeline:
        pipeline.handler_hook = delete_on_first_check
        record = pipeline.run(console(study.consistent, destinationImageSetId=study.primary))
    assert (record.status, record.error) == ("FAILED", "ImageSetNotFound") and ended_well(record)
    assert "deleted during the copy" in (record.cause or "")
    assert accepted_per_source(emulator) == {study.consistent: 1}


def test_copy_failed(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    emulator.faults.copy_faults.append("fail-later:Frame storage error")
    with local_pipeline(emulator, clock) as pipeline:
        record = pipeline.run(console(study.primary))
    assert (record.status, record.error) == ("FAILED", "CopyFailed") and ended_well(record)
    assert accepted_per_source(emulator) == {study.primary: 1}


def test_dynamodb_unavailable_for_a_while(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> None:
    failures = {"left": 6}

    def refuse(request: Any, **_: Any) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise EndpointConnectionError(endpoint_url=request.url)

    with local_pipeline(emulator, clock) as pipeline:
        import copier.table

        copier.table.client().meta.events.register_first("before-send.dynamodb", refuse)  # idempotency's too
        record = pipeline.run(console(study.primary))
    assert failures["left"] == 0
    assert record.status == "SUCCEEDED", record.cause
    assert accepted_per_source(emulator) == {study.primary: 1}


def test_failed_event_deliveries_can_be_redriven(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    """EventBridge (or the admission queue) puts events in the DLQ; `ops redrive` moves them back to the
    admission queue, and the same event twice is admitted, and copied, once."""
    from ops.cli import redrive

    with local_pipeline(emulator, clock) as pipeline:
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        admission = sqs.create_queue(QueueName="admission")["QueueUrl"]
        event = seed.image_set_created_event(DS, study.primary)
        for _ in range(2):  # the same event dead-lettered twice
            sqs.send_message(QueueUrl=queue, MessageBody=_json(event))
        moved = redrive(queue_url=queue, admission_queue_url=admission)
        assert sqs.receive_message(QueueUrl=queue).get("Messages") is None  # drained
        delivered = sqs.receive_message(QueueUrl=admission, MaxNumberOfMessages=10)["Messages"]
        received = [json.loads(m["Body"]) for m in delivered]
        assert pipeline.admit(received) == []  # the event source mapping
        records = pipeline.drain_backlog()
    assert moved == 2 and received == [event, event]  # what the admission queue got: the event, twice
    assert len(records) == 1 and records[0].status == "SUCCEEDED"
    assert accepted_per_source(emulator) == {study.primary: 1}


@pytest.mark.parametrize("to", ["admission", "completion"])
def test_a_redrive_sends_each_event_only_where_it_belongs(to: str) -> None:
    """One dead-letter queue holding both kinds (as an operator's mix-up would make it): to the admission queue go
    import events only (a copy outcome admitted would copy the pipeline's own copy again: a copy storm), to the
    completion queue copy outcome events only; the rest stays in the dead-letter queue."""
    from ops.cli import redrive

    created = seed.image_set_created_event(DS, "a" * 32)
    copied = copy_outcome_event(DS, "b" * 32, "COPIED", 1_767_225_600, account="123456789012", region="us-east-1")
    failed = copy_outcome_event(DS, "c" * 32, "COPY_FAILED", 1_767_225_600, account="123456789012", region="us-east-1")
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dead_letters, target = (sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("dlq", to))
        for event in (created, copied, failed):
            sqs.send_message(QueueUrl=dead_letters, MessageBody=_json(event))
        moved = redrive(queue_url=dead_letters, **{f"{to}_queue_url": target})
        received = [
            json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=target, MaxNumberOfMessages=10)["Messages"]
        ]
        left = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    expected = [created] if to == "admission" else [copied, failed]
    assert moved == len(expected) and sorted(map(_json, received)) == sorted(map(_json, expected))
    assert int(left["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) == 3 - len(expected)  # kept, not deleted


def test_a_redrive_names_exactly_one_queue_to_send_to() -> None:
    from ops.cli import redrive

    with pytest.raises(ValueError, match="one of them"):
        redrive(queue_url="dlq", admission_queue_url="a", completion_queue_url="c")
    with pytest.raises(ValueError, match="one of them"):
        redrive(queue_url="dlq")


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
