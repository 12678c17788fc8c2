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
from function_stubs import DATASTORE, DESTINATION, FUNCTION_ENV, SOURCE, TABLE, Function, emf_metrics

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


def wait_for_it(token: str, since: int, destination: str = DESTINATION, source: str = SOURCE) -> None:
    """What AwaitCopy writes (infra/copy_workflow.py): the token on the destination's wake item and the
    source's, each naming the other, on the same condition, in one transaction."""

    def leave_token(image_set_id: str, partner: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": TABLE,
                "Key": {"id": {"S": f"wake#{image_set_id}"}},
                "UpdateExpression": "SET #token = :token, #since = :since, #partner = :partner",
                "ConditionExpression": "attribute_not_exists(#eventAt) OR #eventAt < :since",
                "ExpressionAttributeNames": {
                    "#token": "token",
                    "#since": "since",
                    "#eventAt": "eventAt",
                    "#partner": "partner",
                },
                "ExpressionAttributeValues": {
                    ":token": {"S": token},
                    ":since": {"N": str(since)},
                    ":partner": {"S": partner},
                },
            }
        }

    boto3.client("dynamodb").transact_write_items(
        TransactItems=[leave_token(destination, source), leave_token(source, destination)]
    )


def wait_for_it_on_the_destination_only(token: str, since: int) -> None:
    """What the previous definition's AwaitCopy wrote (an UpdateItem of the destination's wake item)."""
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"id": {"S": f"wake#{DESTINATION}"}},
        UpdateExpression="SET #token = :token, #since = :since",
        ConditionExpression="attribute_not_exists(#eventAt) OR #eventAt < :since",
        ExpressionAttributeNames={"#token": "token", "#since": "since", "#eventAt": "eventAt"},
        ExpressionAttributeValues={":token": {"S": token}, ":since": {"N": str(since)}},
    )


def wake_item(image_set_id: str) -> dict[str, Any]:
    item: dict[str, Any] = (
        boto3.client("dynamodb").get_item(TableName=TABLE, Key={"id": {"S": f"wake#{image_set_id}"}}).get("Item", {})
    )
    return item


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


@pytest.mark.parametrize("named", [DESTINATION, SOURCE], ids=["naming the destination", "naming the source"])
def test_an_event_before_any_token_is_recorded_so_that_the_token_is_not_stored(function: Function, named: str) -> None:
    function.invoke(batch(copied(T0 + 45, image_set_id=named)))
    with pytest.raises(boto3.client("dynamodb").exceptions.TransactionCanceledException) as cancelled:
        wait_for_it("token-3", since=T0 + 10)  # AwaitCopy fails at once: the workflow looks at the copy
    # The message names each item's reason: what CheckCopy reads to tell this from a failure of AwaitCopy's.
    assert "ConditionalCheckFailed" in str(cancelled.value)
    assert "token" not in wake_item(DESTINATION) and "token" not in wake_item(SOURCE)


def test_an_event_naming_the_source_wakes_the_copy_and_takes_its_token_off_the_destination_too(
    function: Function, step_functions: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whichever image set the account's events name: the first wakes the copy; the second (an account whose
    events name both) is recorded and wakes nothing, without a SendTaskSuccess for a task that moved on."""
    wait_for_it("token-6", since=T0)
    step_functions.add_response(
        "send_task_success",
        {},
        {"taskToken": "token-6", "output": json.dumps({"wokenBy": "event", "eventAt": T0 + 45})},
    )
    assert function.invoke(batch(copied(T0 + 45, image_set_id=SOURCE))) == {"batchItemFailures": []}
    assert "token" not in wake_item(DESTINATION)  # taken off the partner
    assert function.invoke(batch(copied(T0 + 45, image_set_id=DESTINATION))) == {"batchItemFailures": []}
    step_functions.assert_no_pending_responses()  # one SendTaskSuccess
    assert {wake_item(image)["eventAt"]["N"] for image in (SOURCE, DESTINATION)} == {str(T0 + 45)}  # both recorded
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["CopiesWoken"] == 1 and "StaleWakeTokens" not in metrics


def test_a_partner_item_waited_on_by_another_copy_since_keeps_that_copys_token(
    function: Function, step_functions: Stubber
) -> None:
    """The partner's token is taken off only if it is still this copy's: the source may be waited on by a later
    copy of ours (another token) by the time the destination's event comes."""
    wait_for_it("token-7", since=T0)
    wait_for_it("token-8", since=T0 + 5, destination="e" * 32)  # a later copy from the same source
    step_functions.add_response("send_task_success", {}, {"taskToken": "token-7", "output": ANY})
    function.invoke(batch(copied(T0 + 45, image_set_id=DESTINATION)))
    step_functions.assert_no_pending_responses()
    assert wake_item(SOURCE)["token"] == {"S": "token-8"}


def test_a_copy_waiting_on_the_previous_definitions_item_is_woken_as_before(
    function: Function, step_functions: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    """An execution started by the previous definition waits on its destination's item alone (no partner)."""
    wait_for_it_on_the_destination_only("token-9", since=T0)
    step_functions.add_response("send_task_success", {}, {"taskToken": "token-9", "output": ANY})
    assert function.invoke(batch(copied(T0 + 45))) == {"batchItemFailures": []}
    step_functions.assert_no_pending_responses()
    assert emf_metrics(capsys.readouterr().out)["CopiesWoken"] == 1


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
