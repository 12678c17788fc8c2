"""What this pipeline asked HealthImaging to do, kept in the idempotency table.

- attempt#<key>: written just before CopyImageSet, deleted when the service's answer
  is certain. Found again on a later run, it means "the outcome is unknown": the
  copy must be confirmed from the image sets' state, never blindly repeated.
- destination#<id>: an image set this pipeline created or wrote as a copy destination;
  events about it never start a copy (copy-storm guard).
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from copier import clock
from copier.errors import HealthImagingUnavailable
from copier.models import CopyRequest
from copier.settings import load_settings

DESTINATION_MARKER_SECONDS = 7 * 86_400


class LedgerUnavailable(HealthImagingUnavailable):
    """DynamoDB did not answer; nothing was sent to HealthImaging."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@lru_cache(maxsize=1)
def _dynamodb() -> Any:
    return boto3.client("dynamodb")


def request_key(request: CopyRequest) -> str:
    canonical = json.dumps(request.wire(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def call(operation: str, **params: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = getattr(_dynamodb(), operation)(**params)
        return result
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise LedgerUnavailable(f"DynamoDB {operation} failed: {code}", code) from None
    except BotoCoreError as error:
        raise LedgerUnavailable(f"DynamoDB {operation} failed: {type(error).__name__}") from None


def _ttl(seconds: int) -> dict[str, str]:
    return {"N": str(int(clock.now()) + seconds)}


def get_item(key: str) -> dict[str, Any] | None:
    """One record of the table, read consistently."""
    item: dict[str, Any] | None = call(
        "get_item", TableName=load_settings().table_name, Key={"id": {"S": key}}, ConsistentRead=True
    ).get("Item")
    return item


def open_attempt(request: CopyRequest) -> dict[str, Any] | None:
    """The unfinished attempt recorded for this request, if any."""
    item = get_item(f"attempt#{request_key(request)}")
    if not item:
        return None
    return {
        "requestedAt": float(Decimal(item["requestedAt"]["N"])),
        "sourceVersionId": item["sourceVersionId"]["S"],
        "destinationVersionId": item.get("destinationVersionId", {}).get("S"),
    }


def begin_attempt(request: CopyRequest, *, source_version_id: str, destination_version_id: str | None) -> float:
    requested_at = clock.now()
    item = {
        "id": {"S": f"attempt#{request_key(request)}"},
        "requestedAt": {"N": repr(requested_at)},
        "sourceVersionId": {"S": source_version_id},
        "expiration": _ttl(load_settings().idempotency_ttl_seconds),
    }
    if destination_version_id:
        item["destinationVersionId"] = {"S": destination_version_id}
    call("put_item", TableName=load_settings().table_name, Item=item)
    return requested_at


def close_attempt(request: CopyRequest) -> None:
    call(
        "delete_item",
        TableName=load_settings().table_name,
        Key={"id": {"S": f"attempt#{request_key(request)}"}},
    )


def mark_destination(image_set_id: str) -> None:
    call(
        "put_item",
        TableName=load_settings().table_name,
        Item={"id": {"S": f"destination#{image_set_id}"}, "expiration": _ttl(DESTINATION_MARKER_SECONDS)},
    )


def is_pipeline_destination(image_set_id: str) -> bool:
    return get_item(f"destination#{image_set_id}") is not None
