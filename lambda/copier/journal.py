"""The copy journal: one durable entry per source image set version the pipeline decided about.

`journal#<sourceImageSetId>#<sourceVersionId>` in the pipeline's table, beside the copy records it
points to (`copyRecordId`). It holds the decision (copy, or skip and why), the status (PENDING,
SKIPPED, STARTED, COPIED, FORCED, FAILED), the destination and the version the copy produced
(`copiedIntoImageSetId` / `copiedIntoVersionId`: never the copy records' attribute names, which would
put journal entries in the byDestination index), the execution, the force audit (policy, inconsistent
element NAMES) and timestamps. Two indexes answer
the operator's questions (`python -m ops.cli status|list` reads them): `journalBySource` (all versions
of one image set) and `journalByStatus` (e.g. every FAILED entry, oldest first). Entries expire
`journalRetentionDays` after their last change.

COPIED and FORCED are final: a late duplicate execution never turns a landed copy back into
STARTED or FAILED. A FAILED entry moves on when the copy is started again.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from copier import clock, copy_record, table
from copier.errors import TableUnavailable
from copier.models import CopyRequest
from copier.settings import load_settings

KEY_PREFIX = "journal#"
BY_SOURCE_INDEX = "journalBySource"
BY_STATUS_INDEX = "journalByStatus"


class JournalStatus(StrEnum):
    PENDING = "PENDING"
    SKIPPED = "SKIPPED"
    STARTED = "STARTED"
    COPIED = "COPIED"
    FORCED = "FORCED"  # copied, with force
    FAILED = "FAILED"


# A copy that landed is final: a late duplicate execution must not turn it back into STARTED or FAILED.
FINAL = (JournalStatus.COPIED, JournalStatus.FORCED)


def entry_key(source_image_set_id: str, source_version_id: str) -> str:
    return f"{KEY_PREFIX}{source_image_set_id}#{source_version_id}"


def record(
    source_image_set_id: str,
    source_version_id: str,
    status: JournalStatus,
    *,
    admitted_as: str | None = None,
    **fields: str | bool | list[str] | None,
) -> bool:
    """Write the entry's new status and fields; False when the copy already landed (a late duplicate).
    `admitted_as`: the execution input that copies this version (an event, a console request), kept
    from the first write that names one: `ops.cli retry` starts it again."""
    now = Decimal(repr(clock.now()))  # DynamoDB numbers: Decimal, never float
    values: dict[str, Any] = {
        "journalStatus": status.value,
        "updatedAt": now,
        "expiration": int(now) + load_settings().journal_retention_seconds,
        **{name: value for name, value in fields.items() if value is not None},
    }
    names = {f"#{name}": name for name in values}
    placeholders = {f":v_{name}": value for name, value in values.items()}  # v_: never a fixed placeholder
    placeholders.update(
        {
            ":source": source_image_set_id,
            ":version": source_version_id,
            ":now": now,
            ":final_copied": FINAL[0],
            ":final_forced": FINAL[1],
            ":admitted_as": admitted_as,
        }
    )
    assignments = ", ".join(f"#{name} = :v_{name}" for name in values)
    try:
        table.call(
            "update_item",
            Key={"id": {"S": entry_key(source_image_set_id, source_version_id)}},
            UpdateExpression=(
                f"SET {assignments}, journalSourceId = :source, sourceVersionId = :version,"
                " createdAt = if_not_exists(createdAt, :now)"
                + (", admittedAs = if_not_exists(admittedAs, :admitted_as)" if admitted_as else "")
            ),
            ConditionExpression=(
                "attribute_not_exists(journalStatus) OR NOT journalStatus IN (:final_copied, :final_forced)"
                " OR journalStatus = :v_journalStatus"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=table.to_dynamodb({k: v for k, v in placeholders.items() if v is not None}),
        )
    except TableUnavailable as error:
        if table.is_condition_failure(error):
            return False  # a late duplicate: the entry is already further on
        raise
    return True


def is_recorded(source_image_set_id: str, source_version_id: str) -> bool:
    """The pipeline already decided about this image set version (an event, a sweep, a console copy)."""
    return table.get_item(entry_key(source_image_set_id, source_version_id)) is not None


def oldest_change(status: JournalStatus) -> float | None:
    """When the entry in this status that changed longest ago changed (the backlog's age), if any."""
    page = table.call(
        "query",
        IndexName=BY_STATUS_INDEX,
        KeyConditionExpression="journalStatus = :status",
        ExpressionAttributeValues=table.to_dynamodb({":status": status.value}),
        Limit=1,
    )
    items = page.get("Items", [])
    return float(table.from_dynamodb(items[0])["updatedAt"]) if items else None


def for_request(
    request: CopyRequest,
    status: JournalStatus,
    *,
    admitted_as: str | None = None,
    **fields: str | bool | list[str] | None,
) -> bool:
    """Record for the source version this request copies: the request's, or the one StartCopy read.
    A console request that named no version is journaled from StartCopy on; False until then."""
    version = request.source_version_id
    if version is None:
        found = copy_record.load(request)
        version = found.source_version_id if found else None
    if version is None:
        return False
    return record(
        request.source_image_set_id,
        version,
        status,
        admitted_as=admitted_as,
        copyRecordId=copy_record.request_key(request),
        **fields,
    )
