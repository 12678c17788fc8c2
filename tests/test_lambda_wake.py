"""The completion queue's consumer (copier/wake.py): each copy outcome event recorded on its image set's wake
item, the token waiting there sent back at most once, and only when the event is not older than the copy that
waits. SendTaskSuccess is stubbed on the function's own Step Functions client (parameters checked)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from function_stubs import DATASTORE, DESTINATION, FUNCTION_ENV, TABLE, Function, emf_metrics

from offline.emulator import copy_outcome_event

QUEUE = "arn:aws:sqs:us-east-1:123456789012:completion"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.fixture
def function_env() -> dict[str, str]:
    return {**FUNCTION_ENV, "COMPLETION_QUEUE_ARN": QUEUE}


@pytest.fixture
def step_functions(function: Function) -> Iterator[Stubber]:
    import copier.wake  # the function's fresh module

    with Stubber(copier.wake._step_functions()) as stubber:
        yield stubber


def batch(*events: dict[str, Any], source: str = QUEUE) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": str(n),
                "receiptHandle": f"handle-{n}",
                "body": json.dumps(event),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": source,
                "awsRegion": "us-east-1",
            }
            for n, event in enumerate(events)
        ]
    }


def copied(at: int, image_set_id: str = DESTINATION, **detail: Any) -> dict[str, Any]:
    event = copy_outcome_event(DATASTORE, image_set_id, "COPIED", at, account="123456789012", region="us-east-1")
    event["detail"].update(detail)
    return event


def wait_for_it(token: str, since: int, image_set_id: str = DESTINATION) -> None:
    """What AwaitCopy writes (infra/copy_workflow.py), on the same condition."""
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"id": {"S": f"wake#{image_set_id}"}},
        UpdateExpression="SET #token = :token, #since = :since",
        ConditionExpression="attribute_not_exists(#eventAt) OR #eventAt < :since",
        ExpressionAttributeNames={"#token": "token", "#since": "since", "#eventAt": "eventAt"},
        ExpressionAttributeValues={":token": {"S": token}, ":since": {"N": str(since)}},
    )


def test_an_event_for_the_waiting_copy_sends_its_token_back_once_with_the_events_second(
    function: Function, step_functions: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    wait_for_it("token-1", since=T0)
    step_functions.add_response(
        "send_task_success",
        {},
        {"taskToken": "token-1", "output": json.dumps({"wokenBy": "event", "eventAt": T0 + 45})},
    )
    assert function.invoke(batch(copied(T0 + 45), copied(T0 + 45))) == {"batchItemFailures": []}  # and a duplicate
    step_functions.assert_no_pending_responses()
    metrics = emf_metrics(capsys.readouterr().out)
    assert (metrics["CopiesWoken"], metrics["CompletionEventsIgnored"]) == (1, 1)


def test_an_event_older_than_the_waiting_copy_wakes_nothing_and_either_spelling_is_read(
    function: Function, step_functions: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    wait_for_it("token-2", since=T0 + 100)
    late = copied(T0 + 40)  # the previous writer's copy, announced late
    late["detail"]["imagesetId"] = late["detail"].pop("imageSetId")
    assert function.invoke(batch(late)) == {"batchItemFailures": []}
    assert emf_metrics(capsys.readouterr().out)["CompletionEventsIgnored"] == 1
    step_functions.add_response("send_task_success", {}, {"taskToken": "token-2", "output": ANY})
    function.invoke(batch(copied(T0 + 145)))  # its own
    step_functions.assert_no_pending_responses()


def test_an_event_before_any_token_is_recorded_so_that_the_token_is_not_stored(function: Function) -> None:
    function.invoke(batch(copied(T0 + 45)))
    with pytest.raises(boto3.client("dynamodb").exceptions.ConditionalCheckFailedException):
        wait_for_it("token-3", since=T0 + 10)  # AwaitCopy fails at once: the workflow looks at the copy


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_a_token_no_longer_waited_on_is_counted_not_an_error(
    function: Function, step_functions: Stubber, capsys: pytest.CaptureFixture[str], code: str
) -> None:
    wait_for_it("token-4", since=T0)
    step_functions.add_client_error("send_task_success", service_error_code=code, http_status_code=400)
    assert function.invoke(batch(copied(T0 + 60))) == {"batchItemFailures": []}
    assert emf_metrics(capsys.readouterr().out)["StaleWakeTokens"] == 1


@pytest.mark.parametrize("earlier_event", [None, T0 - 600], ids=["first event", "after an earlier event"])
def test_a_wake_up_that_failed_is_sent_again_when_sqs_redelivers_the_event(
    function: Function, step_functions: Stubber, capsys: pytest.CaptureFixture[str], earlier_event: int | None
) -> None:
    """SendTaskSuccess throttled (or a 5xx): the message fails, and its redelivery must still wake the copy
    rather than find the token gone and its own second recorded (the copy would wait its fallback out)."""
    if earlier_event is not None:
        function.invoke(batch(copied(earlier_event)))  # a previous copy's event, nobody waiting
    wait_for_it("token-5", since=T0)
    step_functions.add_client_error("send_task_success", service_error_code="ThrottlingException", http_status_code=400)
    nobody_waits = copied(T0 + 60, image_set_id="f" * 32)  # the batch's other message: done with
    assert function.invoke(batch(copied(T0 + 60), nobody_waits)) == {"batchItemFailures": [{"itemIdentifier": "0"}]}
    step_functions.add_response("send_task_success", {}, {"taskToken": "token-5", "output": ANY})
    assert function.invoke(batch(copied(T0 + 60))) == {"batchItemFailures": []}  # SQS's redelivery
    step_functions.assert_no_pending_responses()
    assert emf_metrics(capsys.readouterr().out)["CopiesWoken"] == 1


def test_bad_events_are_named_and_left_to_the_dead_letter_queue_and_never_reach_admission(function: Function) -> None:
    other_store = copied(T0, datastoreId="f" * 32)
    created = copied(T0)
    created["detail-type"] = "Image Set Created"
    answer = function.invoke(batch(other_store, created, {"source": "aws.s3"}, copied(T0)))
    assert answer == {"batchItemFailures": [{"itemIdentifier": str(n)} for n in range(3)]}  # the fourth is fine
    # Nothing admitted: a copy outcome on the completion queue is never a copy to make (copy storm).
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert not [item for item in items if item["id"]["S"].startswith("journal#")]
