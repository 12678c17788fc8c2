"""The copy record: one durable item per copy request, the single answer to "did we call
CopyImageSet, what did the service say, where did it go".

Lifecycle (`status`):
- CALLING: written just before CopyImageSet. Found again later, it means the outcome is
  unknown (5xx, timeout, crash): the copy must be confirmed (confirm.py), never repeated blindly.
- ACCEPTED: the service answered (or confirmation proved the copy ours); holds the destination
  image set and the version this copy produces.
- REFUSED: the service certainly refused the call; a later attempt may call again.
- NOT_ACCEPTED: confirmation proved nothing of ours landed; a later attempt may call again.

A record that confirmation adopts claims the adopted version (claim#<imageSetId>#<versionId>, in
the same transaction), so no two records can adopt one version. An operator settles a record
confirmation could not decide with `healthimaging-copy resolve`. Records are never deleted by the
function: they expire `copyRecordRetentionDays` after the last call, which the stack keeps longer
than dead-lettered events can be redriven. The index `byDestination` (destinationImageSetId,
destinationVersionId) lets the copy-storm guard and confirmation ask "did this pipeline write
that image set version?".
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel

from copier import clock, table
from copier.errors import CopyConflict, CopyRecordChanged, TableUnavailable
from copier.models import CopyRequest
from copier.settings import table_settings

KEY_PREFIX = "copy#"
CLAIM_PREFIX = "claim#"  # claim#<imageSetId>#<versionId>: the record that adopted that version
BY_DESTINATION_INDEX = "byDestination"


class CopyStatus(StrEnum):
    CALLING = "CALLING"
    ACCEPTED = "ACCEPTED"
    REFUSED = "REFUSED"
    NOT_ACCEPTED = "NOT_ACCEPTED"


class CopyRecord(BaseModel):
    """The item, camelCase in the table as on the wire."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")

    id: str
    status: CopyStatus
    source_image_set_id: str
    source_version_id: str
    destination_image_set_id: str | None = None  # known up front for an existing destination
    baseline_version_id: str | None = None  # the destination's version the call named
    destination_version_id: str | None = None  # the version this copy produces (the service's answer)
    new_image_set: bool = False
    forced: bool = False
    requested_at: float
    calls: int  # CopyImageSet calls made for this request: the guard of every update
    looks: int = 0  # confirmation looks since the last call
    unanswered: int = 0  # calls that got no answer and were proved not accepted
    refusal: str | None = None
    execution_id: str | None = None

    @field_validator("requested_at", "calls", "looks", "unanswered", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        return float(value) if isinstance(value, Decimal) else value

    def item(self) -> dict[str, Any]:
        values = self.model_dump(by_alias=True, mode="json")
        values["requestedAt"] = Decimal(repr(self.requested_at))
        values["expiration"] = int(self.requested_at) + table_settings().copy_record_retention_seconds
        return table.to_dynamodb(values)


def request_key(request: CopyRequest) -> str:
    canonical = json.dumps(request.wire(), sort_keys=True, separators=(",", ":"))
    return KEY_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


def load(request: CopyRequest) -> CopyRecord | None:
    return by_id(request_key(request))


def by_id(record_id: str) -> CopyRecord | None:
    item = table.get_item(record_id)
    return CopyRecord.model_validate(item) if item else None


class RecordExists(Exception):
    """begin_call found a record of this request where it expected none (read it with the write)."""

    def __init__(self, record: CopyRecord) -> None:
        super().__init__(record.id)
        self.record = record


def begin_call(
    request: CopyRequest,
    *,
    previous: CopyRecord | None,
    source_version_id: str,
    baseline_version_id: str | None,
    execution_id: str | None,
) -> CopyRecord:
    """Record that CopyImageSet is about to be called. With no `previous`, the write is the read too: a
    record of this request found instead raises RecordExists with it. Fails (CopyConflict) if another call
    was recorded since `previous`."""
    record = CopyRecord(
        id=request_key(request),
        status=CopyStatus.CALLING,
        source_image_set_id=request.source_image_set_id,
        source_version_id=source_version_id,
        destination_image_set_id=request.destination_image_set_id,
        baseline_version_id=baseline_version_id,
        new_image_set=request.destination_image_set_id is None,
        forced=request.force,
        requested_at=clock.now(),
        calls=(previous.calls if previous else 0) + 1,
        unanswered=previous.unanswered if previous else 0,
        execution_id=execution_id,
    )
    if previous is None:
        condition: dict[str, Any] = {
            "ConditionExpression": "attribute_not_exists(id)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    else:
        condition = {
            "ConditionExpression": "calls = :calls AND #status IN (:refused, :not_accepted)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": table.to_dynamodb(
                {":calls": previous.calls, ":refused": CopyStatus.REFUSED, ":not_accepted": CopyStatus.NOT_ACCEPTED}
            ),
        }
    try:
        table.call("put_item", Item=record.item(), **condition)
    except TableUnavailable as error:
        if table.is_condition_failure(error) and previous is None and error.item:
            raise RecordExists(CopyRecord.model_validate(error.item)) from None
        if table.is_condition_failure(error):
            # Powertools idempotency serialises starts of one request; this is the rare race past it.
            raise CopyConflict("another execution is starting this same copy") from None
        raise
    return record


def _update_params(record: CopyRecord, changes: dict[str, Any], expect: CopyStatus | None) -> dict[str, Any]:
    """UpdateItem parameters applying changes, only if no other call was recorded since
    (and the record is in status `expect`)."""
    updated = record.model_copy(update=changes)
    wire = {to_camel(name): value for name, value in updated.model_dump(mode="json", include=set(changes)).items()}
    names = {f"#{name}": name for name in wire}
    values: dict[str, Any] = {f":{name}": value for name, value in wire.items()}
    condition = "calls = :expected_calls"
    values[":expected_calls"] = record.calls
    if expect is not None:
        names["#status"] = "status"
        values[":expected_status"] = expect
        condition += " AND #status = :expected_status"
    return {
        "Key": {"id": {"S": record.id}},
        "UpdateExpression": "SET " + ", ".join(f"#{name} = :{name}" for name in wire),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": table.to_dynamodb(values),
    }


def _update(record: CopyRecord, *, expect: CopyStatus | None = None, **changes: Any) -> CopyRecord:
    if table.call_if("update_item", **_update_params(record, changes, expect)) is None:
        raise CopyRecordChanged(f"copy record {record.id} changed meanwhile: read it again")
    return record.model_copy(update=changes)


def mark_accepted(record: CopyRecord, *, destination_image_set_id: str, destination_version_id: str) -> CopyRecord:
    """The service answered: the copy is ours, producing this version."""
    return _update(
        record,
        expect=CopyStatus.CALLING,
        status=CopyStatus.ACCEPTED,
        destination_image_set_id=destination_image_set_id,
        destination_version_id=destination_version_id,
    )


def adopt(record: CopyRecord, *, destination_image_set_id: str, destination_version_id: str) -> CopyRecord:
    """Confirmation proved the copy ours: accept it, and claim the version so that no other
    record can adopt it too (a claim item, written in the same transaction)."""
    changes = {
        "status": CopyStatus.ACCEPTED,
        "destination_image_set_id": destination_image_set_id,
        "destination_version_id": destination_version_id,
    }
    claim = {
        "id": f"{CLAIM_PREFIX}{destination_image_set_id}#{destination_version_id}",
        "recordId": record.id,
        "expiration": int(clock.now()) + table_settings().copy_record_retention_seconds,
    }
    claimed = table.transact_write(
        [
            ("Update", _update_params(record, changes, CopyStatus.CALLING)),
            ("Put", {"Item": table.to_dynamodb(claim), "ConditionExpression": "attribute_not_exists(id)"}),
        ]
    )
    if not claimed:
        raise CopyRecordChanged(
            f"version {destination_version_id} of {destination_image_set_id} is claimed by another copy record,"
            f" or copy record {record.id} changed meanwhile"
        )
    return record.model_copy(update=changes)


def mark_refused(record: CopyRecord, error_name: str) -> CopyRecord:
    return _update(record, expect=CopyStatus.CALLING, status=CopyStatus.REFUSED, refusal=error_name)


def mark_not_accepted(record: CopyRecord) -> CopyRecord:
    return _update(record, expect=CopyStatus.CALLING, status=CopyStatus.NOT_ACCEPTED, unanswered=record.unanswered + 1)


def count_look(record: CopyRecord) -> CopyRecord:
    return _update(record, expect=CopyStatus.CALLING, looks=record.looks + 1)


def claims(image_set_id: str, version_id: str | None = None) -> list[CopyRecord]:
    """Copy records whose copy produced this image set (at this version, when given)."""
    condition = "destinationImageSetId = :image_set"
    values: dict[str, Any] = {":image_set": image_set_id}
    if version_id is not None:
        condition += " AND destinationVersionId = :version"
        values[":version"] = version_id
    items = table.call(
        "query",
        IndexName=BY_DESTINATION_INDEX,
        KeyConditionExpression=condition,
        ExpressionAttributeValues=table.to_dynamodb(values),
    ).get("Items", [])
    return [CopyRecord.model_validate(table.from_dynamodb(item)) for item in items]


def written_by_pipeline(image_set_id: str, version_id: str | None) -> bool:
    """Copy-storm guard: this image set version is the output of one of our copies.

    Without a version, only an image set a copy of ours created counts (a merge destination
    is the user's image set: only the versions our copies produced are ours)."""
    found = claims(image_set_id, version_id)
    return any(record.new_image_set for record in found) if version_id is None else bool(found)
