"""The copy journal: one durable entry per source image set version the pipeline decided about.

`journal#<sourceImageSetId>#<sourceVersionId>` in the pipeline's table, beside the copy records it
points to (`copyRecordId`). It holds the decision (copy, or skip and why), the status (PENDING,
SKIPPED, STARTED, COPIED, FORCED, FAILED), the destination and the version the copy produced
(`copiedIntoImageSetId` / `copiedIntoVersionId`: never the copy records' attribute names, which would
put journal entries in the byDestination index), the execution, the force audit (policy, inconsistent
element NAMES) and timestamps. Two indexes answer
the operator's questions (`healthimaging-copy status` and `list` read them): `journalBySource` (all versions
of one image set) and `journalByStatus` (e.g. every FAILED entry, oldest first). Entries expire
`journalRetentionDays` after their last change, except PENDING ones: the backlog waits as long as it takes.

The backlog has two lanes, and every entry names the one it was (last) admitted in (`lane`): `live` (import
events, the reconciliation sweep's missed events, copies started by hand) and `bulk` (backfills; a large
`ops.cli retry`). The dispatcher reads each lane oldest first from a third index, `journalBacklog`: its key,
`backlogLane`, is the entry's lane while it is PENDING and absent otherwise (every write into PENDING sets it,
every write out of PENDING removes it), so the index holds the backlog and nothing else. One version is one
entry whichever lane admits it: admission is create-only, and an import event (or a sweep) for a version
waiting in the bulk lane promotes it to live (`promote`). Entries written before lanes existed (0.2.0 and
earlier, or a function version of it still running after the deploy) carry neither: `lane_of` reads them as
bulk if a backfill admitted them, else live, and copier.legacy_lanes labels the PENDING ones for the index.

An entry a backfill admitted names it (`backfillId`) and remembers what its backfill counted it as
(`countedStatus`): its status changes move the counts on the backfill's progress item (`backfill#<id>`).

COPIED and FORCED are final: a late duplicate execution never turns a landed copy back into
STARTED or FAILED. A FAILED entry moves on when the copy is started again.
"""

from __future__ import annotations

import json
from decimal import Decimal
from enum import StrEnum
from typing import Any

from copier import clock, copy_record, table
from copier.errors import TableUnavailable
from copier.models import CopyPlan, CopyRequest
from copier.settings import table_settings

KEY_PREFIX = "journal#"
BY_SOURCE_INDEX = "journalBySource"
BY_STATUS_INDEX = "journalByStatus"


class Lane(StrEnum):
    LIVE = "live"  # new imports: minutes matter
    BULK = "bulk"  # backfills, large retries: days or weeks


BACKLOG_INDEX = "journalBacklog"
# The lanes' own attribute, only while PENDING: the journalBacklog index's key.
BACKLOG_LANE = "backlogLane"


def lane_of(entry: dict[str, Any]) -> Lane:
    """The lane an entry was admitted in. An entry written before lanes existed (0.2.0) names none: a backfill's
    (it names its `backfillId`) is bulk, any other live."""
    lane = entry.get("lane")
    if lane in (Lane.LIVE.value, Lane.BULK.value):
        return Lane(lane)
    return Lane.BULK if "backfillId" in entry else Lane.LIVE


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
    plan: CopyPlan | None = None,
    only_from: tuple[JournalStatus | None, ...] | None = None,
    lane: Lane | None = None,
    **fields: str | bool | int | Decimal | list[str] | None,
) -> bool:
    """Write the entry's new status and fields; False when the entry is not in a status it may leave
    (`only_from`, None standing for "no entry yet"; by default any but a landed copy: a late duplicate).
    `plan`: what copies this version (the request, and whether its destination is still to be found),
    kept from the first write that names one: the dispatcher starts it, `ops.cli retry` re-admits it.
    `lane`: the lane it is (re-)admitted in, which a write into PENDING must name; other writes keep it.
    An entry a backfill admitted moves its backfill's counters along (count_backfill_change)."""
    update = _update(
        source_image_set_id, source_version_id, status, plan=plan, only_from=only_from, lane=lane, fields=fields
    )
    answer = table.call_if("update_item", ReturnValues="ALL_OLD", **update)
    if answer is None:
        return False  # the entry is elsewhere: a late duplicate, or someone else moved it on
    old = answer.get("Attributes")
    if old and "backfillId" in old:
        count_backfill_change(table.from_dynamodb(old), status.value)
    return True


def _update(
    source_image_set_id: str,
    source_version_id: str,
    status: JournalStatus,
    *,
    plan: CopyPlan | None,
    only_from: tuple[JournalStatus | None, ...] | None,
    lane: Lane | None = None,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """The entry's conditional UpdateItem parameters (TableName left to the caller)."""
    now = Decimal(repr(clock.now()))  # DynamoDB numbers: Decimal, never float
    # A PENDING entry never expires: a backlog lasts as long as the quota makes it (1M copies: 48 days),
    # whatever journalRetentionDays says. Its retention starts when it leaves the backlog.
    pending = status is JournalStatus.PENDING
    if pending and lane is None:
        raise ValueError("a write into the backlog (PENDING) names its lane")
    values: dict[str, Any] = {
        "journalStatus": status.value,
        "updatedAt": now,
        **({} if pending else {"expiration": int(now) + table_settings().journal_retention_seconds}),
        **({"lane": lane.value} if lane else {}),
        **({BACKLOG_LANE: lane.value} if pending and lane else {}),
        **{name: value for name, value in fields.items() if value is not None},
    }
    names = {f"#{name}": name for name in values} | ({"#plan": "plan"} if plan else {})  # PLAN: a reserved word
    placeholders = {f":v_{name}": value for name, value in values.items()}  # v_: never a fixed placeholder
    placeholders.update(
        {
            ":source": source_image_set_id,
            ":version": source_version_id,
            ":now": now,
            ":plan": json.dumps(plan.wire(), sort_keys=True) if plan else None,
        }
    )
    if only_from is None:
        placeholders.update({":from_0": FINAL[0], ":from_1": FINAL[1]})
        condition = (
            "attribute_not_exists(journalStatus) OR NOT journalStatus IN (:from_0, :from_1)"
            " OR journalStatus = :v_journalStatus"
        )
    else:
        allowed = [status for status in only_from if status is not None]
        placeholders.update({f":from_{index}": status.value for index, status in enumerate(allowed)})
        conditions = ["attribute_not_exists(journalStatus)"] if None in only_from else []
        if allowed:
            conditions.append(f"journalStatus IN ({', '.join(f':from_{i}' for i in range(len(allowed)))})")
        condition = " OR ".join(conditions)
    assignments = ", ".join(f"#{name} = :v_{name}" for name in values)
    return {
        "Key": {"id": {"S": entry_key(source_image_set_id, source_version_id)}},
        "UpdateExpression": (
            f"SET {assignments}, journalSourceId = :source, sourceVersionId = :version,"
            " createdAt = if_not_exists(createdAt, :now)"
            + (", #plan = if_not_exists(#plan, :plan)" if plan else "")
            # Out of the backlog's index when out of PENDING; and out of retention while in it.
            + (" REMOVE expiration" if pending else f" REMOVE {BACKLOG_LANE}")
        ),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": table.to_dynamodb({k: v for k, v in placeholders.items() if v is not None}),
    }


def admit(
    source_image_set_id: str, source_version_id: str, plan: CopyPlan, *, lane: Lane, **fields: str | None
) -> bool:
    """The backlog's way in: PENDING in `lane`, unless the pipeline already decided about this version (an event
    delivered twice, a sweep or a backfill that finds it again): False then, and nothing changes, not even its
    place in the backlog (a live admission of a version waiting in the bulk lane: `promote`). With
    `backfillId`, the entry and its backfill's counters are written together (one transaction), so a backfill
    counts what it admitted exactly, however often it retries."""
    backfill_id = fields.get("backfillId")
    if backfill_id is None:
        return record(
            source_image_set_id,
            source_version_id,
            JournalStatus.PENDING,
            plan=plan,
            only_from=(None,),
            lane=lane,
            decision="copy",
            **fields,
        )
    pending = JournalStatus.PENDING.value
    entry = _update(
        source_image_set_id,
        source_version_id,
        JournalStatus.PENDING,
        plan=plan,
        only_from=(None,),
        lane=lane,
        fields={"decision": "copy", "countedStatus": pending, **fields},
    )
    if table.transact_write([("Update", entry), ("Update", _counters(backfill_id, {"admitted": 1, pending: 1}))]):
        return True
    if is_recorded(source_image_set_id, source_version_id):
        return False  # the entry exists: already decided about
    # A conflict with another transaction on the backfill's item: the page is retried.
    raise TableUnavailable(f"backfill {backfill_id}: an admission was cancelled", "TransactionCanceledException")


def promote(source_image_set_id: str, source_version_id: str) -> bool:
    """A version waiting in the bulk lane (a backfill's, or a large retry's) into the live lane, at its back:
    its import event (or a sweep that found it) came. Still one entry and one copy; its backfill's counters
    stay as they are (it is still PENDING). False when it is not waiting in the bulk lane (live already,
    started, landed, or no entry): nothing changes. An entry of 0.2.0 (no lane) is bulk if a backfill admitted
    it, whether or not it is labelled yet."""
    now = Decimal(repr(clock.now()))
    promoted = table.call_if(
        "update_item",
        Key={"id": {"S": entry_key(source_image_set_id, source_version_id)}},
        UpdateExpression=f"SET #lane = :live, {BACKLOG_LANE} = :live, updatedAt = :now",
        ConditionExpression="journalStatus = :pending"
        " AND (#lane = :bulk OR (attribute_not_exists(#lane) AND attribute_exists(backfillId)))",
        ExpressionAttributeNames={"#lane": "lane"},
        ExpressionAttributeValues=table.to_dynamodb(
            {":live": Lane.LIVE.value, ":bulk": Lane.BULK.value, ":pending": JournalStatus.PENDING.value, ":now": now}
        ),
    )
    return promoted is not None


# --- a backfill's counters: how many of the entries it admitted are in each status ----------------------
BACKFILL_KEY_PREFIX = "backfill#"
COUNT_ATTEMPTS = 5


def backfill_key(backfill_id: str) -> str:
    return f"{BACKFILL_KEY_PREFIX}{backfill_id}"


def _counters(backfill_id: str, changes: dict[str, int]) -> dict[str, Any]:
    """UpdateItem parameters that add `changes` to the backfill's counters (`entries<STATUS>`, `admitted`)."""
    names = {f"#c{index}": name if name == "admitted" else f"entries{name}" for index, name in enumerate(changes)}
    values = {f":c{index}": change for index, change in enumerate(changes.values())}
    return {
        "Key": {"id": {"S": backfill_key(backfill_id)}},
        "UpdateExpression": "ADD " + ", ".join(f"#c{index} :c{index}" for index in range(len(changes))),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": table.to_dynamodb(values),
    }


def count_backfill_change(old: dict[str, Any], new_status: str) -> None:
    """Move one count of the entry's backfill from the status last counted to the new one.

    The entry remembers what it was counted as (`countedStatus`); the move and that mark change together,
    on condition the mark is still what this write saw, so a retried or duplicated write counts nothing
    twice (a FAILED copy re-admitted by `ops.cli retry` then COPIED counts once as failed, then once as
    copied). Were the function to die between the entry's write and this one, the entry's next write
    moves its count from where it was last counted."""
    counted = old.get("countedStatus")
    for _ in range(COUNT_ATTEMPTS):
        if counted is None or counted == new_status:
            return
        mark = {
            "Key": {"id": {"S": str(old["id"])}},
            "UpdateExpression": "SET countedStatus = :new",
            "ConditionExpression": "countedStatus = :old",
            "ExpressionAttributeValues": table.to_dynamodb({":new": new_status, ":old": counted}),
        }
        if table.transact_write(
            [("Update", mark), ("Update", _counters(str(old["backfillId"]), {str(counted): -1, new_status: 1}))]
        ):
            return
        # Cancelled: counted meanwhile by another write of this entry (nothing to move), or a conflict
        # with another transaction on the backfill's item (hot while it runs): look again.
        latest = table.get_item(str(old["id"])) or {}
        counted = latest.get("countedStatus")
        new_status = str(latest.get("journalStatus", new_status))
    raise TableUnavailable(f"backfill counters of {old['id']}: the transaction kept being cancelled")


# What TransactWriteItems takes at most.
MARKS_PER_TRANSACTION = 100


def mark_started(started: list[tuple[dict[str, Any], str, float]]) -> None:
    """The dispatcher's entries STARTED, each with its execution and slot, on condition each is still PENDING:
    up to MARKS_PER_TRANSACTION in one transaction (one call, not one each). A transaction that is cancelled
    (an entry moved on meanwhile: a copy started by hand) is redone entry by entry, skipping the ones that
    moved; an entry a backfill admitted is marked on its own, its backfill's counters moving with it."""
    counted = [mark for mark in started if "backfillId" in mark[0]]
    plain = [mark for mark in started if "backfillId" not in mark[0]]
    for chunk in (plain[i : i + MARKS_PER_TRANSACTION] for i in range(0, len(plain), MARKS_PER_TRANSACTION)):
        if not table.transact_write([("Update", _started(*mark)) for mark in chunk]):
            counted.extend(chunk)
    for entry, execution_arn, slot in counted:
        record(
            str(entry["journalSourceId"]),
            str(entry["sourceVersionId"]),
            JournalStatus.STARTED,
            only_from=(JournalStatus.PENDING,),
            executionId=execution_arn,
            slotAt=Decimal(repr(slot)),
        )


def _started(entry: dict[str, Any], execution_arn: str, slot: float) -> dict[str, Any]:
    return _update(
        str(entry["journalSourceId"]),
        str(entry["sourceVersionId"]),
        JournalStatus.STARTED,
        plan=None,
        only_from=(JournalStatus.PENDING,),
        fields={"executionId": execution_arn, "slotAt": Decimal(repr(slot))},
    )


def pending(limit: int) -> list[dict[str, Any]]:
    """The oldest PENDING entries, oldest first, whatever their lane (labelled or not): the whole backlog."""
    return oldest(JournalStatus.PENDING, limit)


def waiting(lane: Lane, limit: int) -> list[dict[str, Any]]:
    """The oldest entries waiting in one lane, oldest first: what the dispatcher starts next (journalBacklog).
    An entry the index still holds although it left PENDING (a function version of 0.2.0, which knows no
    lanes, moved it on: an event given to an execution by hand, a copy that landed) is not waiting: its label
    is taken off, and it is left out."""
    found: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while len(found) < limit:
        page = table.call(
            "query",
            IndexName=BACKLOG_INDEX,
            KeyConditionExpression=f"{BACKLOG_LANE} = :lane",
            ExpressionAttributeValues=table.to_dynamodb({":lane": lane.value}),
            Limit=limit - len(found),
            **({"ExclusiveStartKey": start} if start else {}),
        )
        for item in map(table.from_dynamodb, page.get("Items", [])):
            if item.get("journalStatus") == JournalStatus.PENDING.value:
                found.append(item)
            else:
                _unlabel(str(item["id"]))
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return found


def pending_after(
    after: dict[str, Any] | None, since: float | None, until: float, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` PENDING entries changed no earlier than `since` (None: any) and no later than `until`, after
    the journalByStatus key `after` (None: from the range's start), oldest change first, with only what labelling
    reads: their keys, lanes and backfillId. And whether there are more."""
    bounds = {":pending": JournalStatus.PENDING.value, ":until": Decimal(repr(until))}
    if since is not None:
        bounds[":since"] = Decimal(repr(since))
    page = table.call(
        "query",
        IndexName=BY_STATUS_INDEX,
        KeyConditionExpression="journalStatus = :pending AND "
        + ("updatedAt <= :until" if since is None else "updatedAt BETWEEN :since AND :until"),
        ExpressionAttributeValues=table.to_dynamodb(bounds),
        ProjectionExpression=f"id, journalStatus, updatedAt, #lane, backfillId, {BACKLOG_LANE}",
        ExpressionAttributeNames={"#lane": "lane"},
        Limit=limit,
        **({"ExclusiveStartKey": table.to_dynamodb(after)} if after else {}),
    )
    return [table.from_dynamodb(item) for item in page.get("Items", [])], "LastEvaluatedKey" in page


def status_index_key(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry's position in journalByStatus (its key there: what LastEvaluatedKey names)."""
    return {"journalStatus": entry["journalStatus"], "updatedAt": entry["updatedAt"], "id": entry["id"]}


def label(entry: dict[str, Any]) -> bool:
    """A PENDING entry that has no lane label (written by 0.2.0) into the backlog's index, in its lane (lane_of),
    on condition it is still PENDING and still unlabelled; its place (updatedAt) is kept."""
    lane = lane_of(entry).value
    labelled = table.call_if(
        "update_item",
        Key={"id": {"S": str(entry["id"])}},
        UpdateExpression=f"SET {BACKLOG_LANE} = :lane, #lane = :lane",
        ConditionExpression=f"journalStatus = :pending AND attribute_not_exists({BACKLOG_LANE})",
        ExpressionAttributeNames={"#lane": "lane"},
        ExpressionAttributeValues=table.to_dynamodb({":lane": lane, ":pending": JournalStatus.PENDING.value}),
    )
    return labelled is not None


def pending_by_lane(limit: int) -> dict[Lane, list[dict[str, Any]]]:
    """Each lane's oldest PENDING entries (up to `limit` each), read from journalByStatus (whatever their labels):
    what the dispatcher reads while the lanes' index is being built (an upgrade adds it to a table that holds
    entries; DynamoDB refuses reads of an index until it is built)."""
    oldest = pending(2 * limit)
    return {lane: [entry for entry in oldest if lane_of(entry) is lane][:limit] for lane in (Lane.LIVE, Lane.BULK)}


def _unlabel(entry_id: str) -> None:
    """Take an entry that is no longer PENDING out of the backlog's index (on that condition)."""
    table.call_if(
        "update_item",
        Key={"id": {"S": entry_id}},
        UpdateExpression=f"REMOVE {BACKLOG_LANE}",
        ConditionExpression="journalStatus <> :pending",
        ExpressionAttributeValues=table.to_dynamodb({":pending": JournalStatus.PENDING.value}),
    )


def oldest(status: JournalStatus, limit: int, *, changed_before: float | None = None) -> list[dict[str, Any]]:
    """Up to `limit` entries in this status, the longest unchanged first (and unchanged since a time)."""
    if limit <= 0:
        return []
    condition, values = "journalStatus = :status", {":status": status.value}
    if changed_before is not None:
        condition += " AND updatedAt < :before"
        values[":before"] = Decimal(repr(changed_before))  # type: ignore[assignment]
    return _query(condition, values, limit=limit)


def started_slots() -> list[float]:
    """When the STARTED entries' copies were to be called (the dispatcher's slot; the entry's last change for
    a copy started otherwise): the copies in flight, or about to be (the concurrent-copy quota's permits)."""
    found = _query("journalStatus = :status", {":status": JournalStatus.STARTED.value}, projection="slotAt, updatedAt")
    return [float(item.get("slotAt", item["updatedAt"])) for item in found]


def landed_since(since: float) -> list[float]:
    """How long the dispatcher's copies that landed (COPIED) since `since` took: from their slot to their landing
    (`landedAt`: their produced version's updatedAt, or their event's second: copier.copy_status.landed_at), or,
    when neither could be trusted, to the look that found them."""
    found = _query(
        "journalStatus = :status AND updatedAt > :since",
        {":status": JournalStatus.COPIED.value, ":since": Decimal(repr(since))},
        projection="slotAt, landedAt, updatedAt",
    )
    return [
        float(item.get("landedAt", item["updatedAt"])) - float(item["slotAt"]) for item in found if "slotAt" in item
    ]


def _query(
    condition: str, values: dict[str, Any], *, limit: int | None = None, projection: str | None = None
) -> list[dict[str, Any]]:
    """journalByStatus's entries matching the condition, oldest change first, every page (up to `limit`)."""
    found: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while limit is None or len(found) < limit:
        page = table.call(
            "query",
            IndexName=BY_STATUS_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=table.to_dynamodb(values),
            **({"Limit": limit - len(found)} if limit is not None else {}),
            **({"ProjectionExpression": projection} if projection else {}),
            **({"ExclusiveStartKey": start} if start else {}),
        )
        found.extend(table.from_dynamodb(item) for item in page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return found


def entries(
    *, image_set_id: str | None = None, status: JournalStatus | None = None, since: float = 0.0
) -> list[dict[str, Any]]:
    """Every entry of one image set (every version), or every entry in one status changed since a time, the
    longest unchanged first (`ops.cli status`, `list`, `retry`)."""
    if image_set_id is not None:
        query = {
            "IndexName": BY_SOURCE_INDEX,
            "KeyConditionExpression": "journalSourceId = :value",
            "ExpressionAttributeValues": table.to_dynamodb({":value": image_set_id}),
        }
    elif status is not None:
        query = {
            "IndexName": BY_STATUS_INDEX,
            "KeyConditionExpression": "journalStatus = :value AND updatedAt >= :since",
            "ExpressionAttributeValues": table.to_dynamodb({":value": status.value, ":since": Decimal(repr(since))}),
        }
    else:
        raise ValueError("entries: give an image set or a status")
    found: list[dict[str, Any]] = []
    page: dict[str, Any] = {}
    while True:
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]} if "LastEvaluatedKey" in page else {}
        page = table.call("query", **query, **start)
        found.extend(table.from_dynamodb(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return found


def readmit(entry: dict[str, Any], lane: Lane) -> bool:
    """A FAILED entry back into the backlog (`ops.cli retry`) in `lane`, with the plan it was admitted with: the
    dispatcher starts it under a new execution name (its dispatch count goes up), and its backfill's counts
    move with it. False when it is no longer FAILED (re-admitted meanwhile, or started again by hand)."""
    return record(
        str(entry["journalSourceId"]),
        str(entry["sourceVersionId"]),
        JournalStatus.PENDING,
        only_from=(JournalStatus.FAILED,),
        lane=lane,
        dispatches=int(entry.get("dispatches", 0)) + 1,
    )


def planned(entry: dict[str, Any]) -> CopyPlan | None:
    """The plan an entry was admitted with, if it names one."""
    return CopyPlan.model_validate(json.loads(entry["plan"])) if entry.get("plan") else None


def read(source_image_set_id: str, source_version_id: str) -> dict[str, Any] | None:
    return table.get_item(entry_key(source_image_set_id, source_version_id))


def is_recorded(source_image_set_id: str, source_version_id: str) -> bool:
    """The pipeline already decided about this image set version (an event, a sweep, a console copy)."""
    return read(source_image_set_id, source_version_id) is not None


def oldest_pending_change() -> float | None:
    """When the oldest PENDING entry (of either lane) was admitted (the backlog's age), if any."""
    oldest = pending(limit=1)
    return float(oldest[0]["updatedAt"]) if oldest else None


def for_request(
    request: CopyRequest,
    status: JournalStatus,
    *,
    plan: CopyPlan | None = None,
    **fields: str | bool | int | list[str] | None,
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
        plan=plan,
        only_from=None,
        lane=None,  # a copy's own steps keep the entry's lane
        copyRecordId=copy_record.request_key(request),
        **fields,
    )
