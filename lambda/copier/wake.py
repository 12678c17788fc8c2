"""Waking a copy's execution when HealthImaging says its copy ended, instead of polling for it.

A started copy waits in `AwaitCopy` (infra/copy_workflow.py), a `.waitForTaskToken` task that writes its
task token to two wake items in the pipeline's table, `wake#<destination image set id>` and
`wake#<source image set id>`, in one transaction, each on condition that no event newer than the copy's
`wakeSince` is recorded there, and times out after the copy's fallback wait. Both, because AWS's event reference
defines an event's image set only as "the image set ID associated with the status change event", and a copy
changes the status of its source and its destination: whichever the account's events name, the copy is woken
(`healthimaging-copy doctor --canary` tells which). Each item names the other (`partner`). HealthImaging's
"Image Set Copied" / "Image Set Copy Failed" events (best effort) reach this module through the completion queue.
For each, one conditional write records the event's time on its image set's item and takes the token:

- token stored first, event second: the event takes it and sends it back (SendTaskSuccess), then takes the same
  token off the partner item, so that an event naming the other image set finds nobody waiting;
- event first, token second: the token's transaction is cancelled (an event at or after wakeSince is recorded
  on one of its items) and the execution looks at once;
- an event older than the waiting copy (`wakeSince`: a late or duplicated one, the previous writer's) or
  no newer than the one recorded takes nothing.

An event is never proof: whatever woke it, CheckCopy reads the version this copy produced, and a wake-up
for another writer's copy into (or out of) the same image set only makes it look, then wait again. The item is
per image set, not per version: the developer guide's example events carry `imageSetVersion`, but the
EventBridge schema (aws.medical-imaging@ImageSetCopied) names none, so nothing here relies on it; a copy holds its
source and its destination locked, so one copy of ours at a time waits on either. A token that is no longer
waited on (its task timed out, or another event woke it first) is refused by Step Functions (TaskTimedOut,
TaskDoesNotExist, InvalidToken): counted as StaleWakeTokens, not an error. Items the previous definition wrote
(the destination's alone, no partner) are woken the same way.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from copier import table
from copier.errors import InvalidCopyRequest, TableUnavailable
from copier.intake import EVENT_SOURCE, check_datastore
from copier.models import HealthImagingEvent, parse

logger = Logger(child=True)
metrics = Metrics()

KEY_PREFIX = "wake#"
COPY_OUTCOMES = ("Image Set Copied", "Image Set Copy Failed")
# A wake item outlives any wait on it (an execution lasts 2 days at most).
EXPIRES_AFTER_SECONDS = 3 * 86_400
# What Step Functions answers for a token whose task is no longer waiting.
STALE_TOKEN_ERRORS = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")


def wake_key(image_set_id: str) -> str:
    return f"{KEY_PREFIX}{image_set_id}"


@lru_cache(maxsize=1)
def _step_functions() -> Any:
    return boto3.client("stepfunctions")


def on_copy_event(raw: Any) -> bool:
    """One copy outcome event: recorded, and the execution waiting on its image set woken; True if one was."""
    if not isinstance(raw, dict) or raw.get("source") != EVENT_SOURCE:
        raise InvalidCopyRequest(f"completion event: source: expected {EVENT_SOURCE!r}")
    event = parse(HealthImagingEvent, raw, "completion event")
    if event.detail_type not in COPY_OUTCOMES:
        raise InvalidCopyRequest(f"completion event: detail-type {event.detail_type!r} is not a copy outcome")
    check_datastore(event.detail.datastore_id, "detail.datastoreId")
    at = int(event.time.timestamp())
    recorded = table.call_if(
        "update_item",
        Key={"id": {"S": wake_key(event.detail.image_set_id)}},
        UpdateExpression="SET eventAt = :at, expiration = :expiration REMOVE #token",
        # Newer than the event recorded, and not older than the copy waiting (if one is).
        ConditionExpression=(
            "(attribute_not_exists(eventAt) OR eventAt < :at) AND (attribute_not_exists(#token) OR since <= :at)"
        ),
        ExpressionAttributeNames={"#token": "token"},
        ExpressionAttributeValues=table.to_dynamodb(
            {":at": Decimal(at), ":expiration": Decimal(at + EXPIRES_AFTER_SECONDS)}
        ),
        ReturnValues="ALL_OLD",
    )
    if recorded is None:
        metrics.add_metric(name="CompletionEventsIgnored", unit=MetricUnit.Count, value=1)
        return False  # a duplicate, a late one, or older than the copy that waits now
    previous = table.from_dynamodb(recorded.get("Attributes", {}))
    token = previous.get("token")
    if token is None:
        return False  # nobody waits (yet): a copy that registers later finds this event and looks at once
    try:
        # The event's second: when the copy landed, as far as the event says (CheckCopy journals it).
        _step_functions().send_task_success(
            taskToken=str(token), output=json.dumps({"wokenBy": "event", "eventAt": at})
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in STALE_TOKEN_ERRORS:
            _undo(event.detail.image_set_id, previous, at)
            raise  # SQS redelivers the event, which finds the item as it was and sends the token again
        metrics.add_metric(name="StaleWakeTokens", unit=MetricUnit.Count, value=1)
        _release_partner(previous)
        return False
    metrics.add_metric(name="CopiesWoken", unit=MetricUnit.Count, value=1)
    _release_partner(previous)
    return True


def _release_partner(taken: dict[str, Any]) -> None:
    """The token just used, taken off the other image set's wake item too (if it is still there): the copy's
    event about that image set (accounts whose events name both) then wakes nothing, rather than spend a
    SendTaskSuccess on a task that has moved on. Best effort: a token left there is refused as stale."""
    partner = taken.get("partner")
    if partner is None:
        return  # an item of the previous definition: the destination's alone
    try:
        table.call_if(
            "update_item",
            Key={"id": {"S": wake_key(str(partner))}},
            UpdateExpression="REMOVE #token",
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues=table.to_dynamodb({":token": taken["token"]}),
        )
    except TableUnavailable as error:
        logger.warning("Wake token not taken off the partner item", extra={"error": type(error).__name__})


def _undo(image_set_id: str, previous: dict[str, Any], at: int) -> None:
    """The wake item as it was before this event took its token (SendTaskSuccess failed: throttled, a 5xx),
    unless something came since (a newer event, another copy waiting): then there is nothing to put back."""
    earlier = previous.get("eventAt")
    try:
        table.call(
            "update_item",
            Key={"id": {"S": wake_key(image_set_id)}},
            UpdateExpression="SET #token = :token"
            + (", eventAt = :earlier" if earlier is not None else " REMOVE eventAt"),
            ConditionExpression="eventAt = :at AND attribute_not_exists(#token)",
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues=table.to_dynamodb(
                {":token": previous["token"], ":at": Decimal(at)}
                | ({":earlier": earlier} if earlier is not None else {})
            ),
        )
    except TableUnavailable as error:
        # The copy is looked at after its fallback wait all the same.
        logger.warning("Wake token not put back", extra={"error": type(error).__name__})
