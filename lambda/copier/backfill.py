"""Backfill (action `backfill_page`, the backfill workflow's one task): the copy policy applied to image sets
that already exist, one SearchImageSets page per call.

A backfill only admits: each image set found without a copy journal entry goes through the copy policy
(intake.plan_for_image_set: copy-storm guard, merge-into-primary) into the backlog's bulk lane as PENDING, and
the dispatcher starts the copies with what the live lane (new imports) leaves of the CopyImageSet quota, at
least bulkMinimumShare of it. Admission is create-only, so a page read twice, a backfill run twice or an image
set an event admitted too is one journal entry and one copy (an event's entry stays live; an event for an
image set whose copy waits in the bulk lane promotes it).

Its progress lives in one item, `backfill#<id>`: the filters, the cursor (which search, which page), the
execution that owns it, its state (RUNNING, STOPPED, DONE), what the pages saw (seen, skipped,
alreadyJournaled) and, kept by the journal, how many entries it admitted and where they are now
(`entries<STATUS>`, journal.count_backfill_change). The cursor moves only with the page's work done, and only
for the execution that owns the backfill, so a stopped backfill resumes from its last page, re-reading at
most that one: no gap, nothing admitted twice. After PAGES_PER_EXECUTION pages the workflow goes on as a new
execution (Step Functions keeps at most 25,000 history events per execution).

Cost per page (up to 50 image sets): one SearchImageSets; per image set one journal read; per image set
admitted the copy-storm guard's index query and one transaction (the entry and the backfill's counters);
one write of the progress item.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from copier import clock, healthimaging, intake, journal, table
from copier.errors import InvalidCopyRequest, SearchTokenRefused
from copier.models import BackfillCursor, BackfillFilters, BackfillInput, BackfillPosition, parse
from copier.settings import CopyPolicy, load_settings

logger = Logger(child=True)
metrics = Metrics()

PAGES_PER_EXECUTION = 1_000  # about 5 history events a page: well under Step Functions' 25,000
# The image sets a position keeps of one createdAt instant (an import can create thousands in one second): ~36 KB
# of the progress item, whose DynamoDB limit is 400 KB. Past it, those of that instant read again after a refused
# token are found in the journal (counted seen twice, alreadyJournaled), never admitted twice.
MAX_POSITION_IDS = 1_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # before any HealthImaging image set (the service dates from 2023)
RUNNING, STOPPED, DONE = "RUNNING", "STOPPED", "DONE"


@dataclass(frozen=True)
class PageResult:
    backfill_id: str
    filters: dict[str, Any]  # as recorded when the backfill started (the range's end fixed)
    done: bool  # finished, stopped, or superseded by another execution: this execution ends
    state: str
    continue_as_new: bool = False  # this execution has read its share of pages: go on as `next_execution_name`
    next_execution_name: str | None = None

    def wire(self) -> dict[str, Any]:
        names = {"backfill_id": "backfillId", "continue_as_new": "continueAsNew"}
        names["next_execution_name"] = "nextExecutionName"
        return {names.get(key, key): value for key, value in asdict(self).items()}


def execution_name(backfill_id: str, number: int) -> str:
    """The backfill's executions, in order: `<id>-e0`, `<id>-e1`, ... (ops.cli uses the same names)."""
    return f"{backfill_id}-e{number}"


def searches(filters: BackfillFilters, *, since: float | None = None) -> list[list[dict[str, Any]]]:
    """The SearchImageSets filter lists a backfill goes through, in order (the API takes at most two filters:
    the selection, and isPrimary under merge-into-primary, as reconciliation does). `since`: a createdAt range
    searched again from there (a refused token), a second early: whether BETWEEN includes its bounds is not
    documented, and what was seen already is skipped by its position."""
    if filters.study_instance_uids is not None:
        selections = [healthimaging.equal("DICOMStudyInstanceUID", uid) for uid in filters.study_instance_uids]
    else:
        if filters.created_before is None:  # fixed when the backfill starts: never open
            raise InvalidCopyRequest("filters.createdBefore: missing")
        after = filters.created_after or EARLIEST
        if since is not None:
            after = max(after, datetime.fromtimestamp(since - 1, tz=UTC))
        selections = [healthimaging.between("createdAt", after, filters.created_before)]
    if load_settings().copy_policy is CopyPolicy.MERGE_INTO_PRIMARY:
        return [[selection, healthimaging.equal("isPrimary", False)] for selection in selections]
    return [[selection] for selection in selections]


def backfill_page(raw: Any, *, execution_id: str | None) -> PageResult:
    """Read one page of the backfill's current search and admit what it finds; move the cursor on."""
    run = parse(BackfillInput, raw, "backfill input")
    if not execution_id:
        raise InvalidCopyRequest("executionId: a backfill page runs in an execution of the backfill workflow")
    me = execution_id.rsplit(":", 1)[-1]
    progress = _progress(run, me)
    filters = BackfillFilters.model_validate(json.loads(progress["filters"]))
    recorded = filters.wire()
    if progress["backfillState"] != RUNNING or progress["executionName"] != me:
        # Stopped by an operator, finished, or another execution owns it now (a resume): this one ends.
        logger.info("Backfill not run by this execution", extra={"backfillId": run.backfill_id})
        return PageResult(run.backfill_id, recorded, done=True, state=str(progress["backfillState"]))
    cursor = BackfillCursor.model_validate(json.loads(progress["cursor"]))
    plan = searches(filters)
    if cursor.search >= len(plan):
        return PageResult(run.backfill_id, recorded, done=True, state=DONE)
    try:
        summaries, token = _search_page(filters, cursor)
    except SearchTokenRefused:
        # Resumed after days: the saved token is too old. Search again from the last position (a range search
        # from its createdAt; a study's search from its start): what was seen already is skipped below.
        ranged = filters.study_instance_uids is None and cursor.position is not None
        cursor = cursor.model_copy(
            update={"next_token": None, "since": cursor.position.created_at if ranged else None}  # type: ignore[union-attr]
        )
        logger.warning("Backfill search token refused: searching again", extra={"backfillId": run.backfill_id})
        summaries, token = _search_page(filters, cursor)
    seen = skipped = already = 0
    position = cursor.position
    for summary in summaries:
        image_set_id, version = str(summary["imageSetId"]), str(summary["version"])
        created_at = _epoch(summary["createdAt"])
        if position is not None and position.passed(created_at, image_set_id):
            continue  # seen before the search started again
        position = _moved(position, created_at, image_set_id)
        seen += 1
        if journal.is_recorded(image_set_id, version):
            already += 1  # an event, a sweep or an earlier page got there
            continue
        decision = intake.plan_for_image_set(
            image_set_id,
            version,
            is_primary=bool(summary.get("isPrimary")),
            why=f"backfill {run.backfill_id}",
            lane=journal.Lane.BULK,
            backfillId=run.backfill_id,
        )
        skipped += decision.skip
    following = BackfillCursor(search=cursor.search, next_token=token, position=position, since=cursor.since)
    if not token:
        following = BackfillCursor(search=cursor.search + 1)
    done = following.search >= len(plan)
    pages = int(progress.get("executionPages", 0)) + 1
    next_name = (
        execution_name(run.backfill_id, int(progress.get("executions", 0)) + 1)
        if not done and pages >= PAGES_PER_EXECUTION
        else None
    )
    moved = _advance(
        run.backfill_id,
        me,
        old=progress["cursor"],
        new=following,
        counts={"seen": seen, "skipped": skipped, "alreadyJournaled": already, "pages": 1},
        done=done,
        next_name=next_name,
    )
    metrics.add_metric(name="BackfillImageSetsSeen", unit=MetricUnit.Count, value=seen)
    logger.info(
        "Backfill page",
        extra={"backfillId": run.backfill_id, "seen": seen, "skipped": skipped, "alreadyJournaled": already},
    )
    if not moved:  # stopped (or taken over) while this page ran: its work is done, the next owner re-reads it
        return PageResult(run.backfill_id, recorded, done=True, state=STOPPED)
    return PageResult(
        run.backfill_id,
        recorded,
        done=done,
        state=DONE if done else RUNNING,
        continue_as_new=next_name is not None,
        next_execution_name=next_name,
    )


def _search_page(filters: BackfillFilters, cursor: BackfillCursor) -> tuple[list[dict[str, Any]], str | None]:
    search = searches(filters, since=cursor.since)[cursor.search]
    return healthimaging.search_page(load_settings().datastore_id, search, token=cursor.next_token, sort_by="createdAt")


def _epoch(created_at: object) -> float:
    """A summary's createdAt: a datetime from boto3 (epoch seconds on the wire)."""
    return created_at.timestamp() if isinstance(created_at, datetime) else float(str(created_at))


def _moved(position: BackfillPosition | None, created_at: float, image_set_id: str) -> BackfillPosition:
    if position is not None and position.created_at == created_at:
        if len(position.image_set_ids) >= MAX_POSITION_IDS:
            return position  # the rest of this instant is found in the journal if it is read again
        return position.model_copy(update={"image_set_ids": [*position.image_set_ids, image_set_id]})
    return BackfillPosition(created_at=created_at, image_set_ids=[image_set_id])


def _progress(run: BackfillInput, me: str) -> dict[str, Any]:
    """The backfill's progress item; the first page of a new backfill creates it, fixing the range's end."""
    key = journal.backfill_key(run.backfill_id)
    found = table.get_item(key)
    if found is not None:
        if "filters" not in found:  # counters only: the journal counted before the item was created
            raise InvalidCopyRequest(f"backfillId: {run.backfill_id} has no recorded filters")
        stored = BackfillFilters.model_validate(json.loads(found["filters"]))
        requested = run.filters
        if requested.created_before is None and not stored.study_instance_uids:
            requested = requested.model_copy(update={"created_before": stored.created_before})
        if requested != stored:
            raise InvalidCopyRequest(f"filters: backfill {run.backfill_id} was started with other filters")
        return found
    filters = run.filters
    if filters.study_instance_uids is None and filters.created_before is None:
        filters = filters.model_copy(update={"created_before": datetime.fromtimestamp(clock.now(), tz=UTC)})
    now = Decimal(repr(clock.now()))
    item = {
        "id": key,
        "filters": json.dumps(filters.wire(), sort_keys=True),
        "cursor": json.dumps(BackfillCursor().wire(), sort_keys=True),
        "backfillState": RUNNING,
        "executionName": me,
        "executions": 0,
        "executionPages": 0,
        "startedAt": now,
        "updatedAt": now,
    }
    names = {f"#{name}": name for name in item if name != "id"}
    created = table.call_if(
        "update_item",
        Key={"id": {"S": key}},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in item if name != "id"),
        ConditionExpression="attribute_not_exists(filters)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=table.to_dynamodb({f":{k}": v for k, v in item.items() if k != "id"}),
    )
    if created is None:
        return _progress(run, me)  # created meanwhile (a retried first page): read it
    logger.info("Backfill started", extra={"backfillId": run.backfill_id})
    return item


def _advance(
    backfill_id: str,
    me: str,
    *,
    old: str,
    new: BackfillCursor,
    counts: dict[str, int],
    done: bool,
    next_name: str | None,
) -> bool:
    """Move the cursor and add the page's counts, only if this execution still owns the backfill and the
    cursor is where the page started; False otherwise."""
    values: dict[str, Any] = {
        ":cursor": json.dumps(new.wire(), sort_keys=True),
        ":old": old,
        ":me": me,
        ":running": RUNNING,
        ":now": Decimal(repr(clock.now())),
        ":state": DONE if done else RUNNING,
    }
    assignments = ["#cursor = :cursor", "updatedAt = :now", "backfillState = :state"]
    if next_name is not None:
        assignments += ["executionName = :next", "executionPages = :zero"]
        values.update({":next": next_name, ":zero": 0, ":one": 1})
        additions = [*(f"#{name} :{name}" for name in counts), "executions :one"]
    else:
        additions = [*(f"#{name} :{name}" for name in counts), "executionPages :one_page"]
        values[":one_page"] = 1
    values.update({f":{name}": value for name, value in counts.items()})
    moved = table.call_if(
        "update_item",
        Key={"id": {"S": journal.backfill_key(backfill_id)}},
        UpdateExpression=f"SET {', '.join(assignments)} ADD {', '.join(additions)}",
        ConditionExpression="#cursor = :old AND executionName = :me AND backfillState = :running",
        ExpressionAttributeNames={"#cursor": "cursor", **{f"#{name}": name for name in counts}},
        ExpressionAttributeValues=table.to_dynamodb(values),
    )
    return moved is not None


# --- an operator's moves (ops.cli backfill stop|resume|status) ------------------------------------------------
def read_progress(backfill_id: str) -> dict[str, Any] | None:
    return table.get_item(journal.backfill_key(backfill_id))


def stop(backfill_id: str) -> str | None:
    """Mark a running backfill STOPPED: its page in flight finishes, its cursor stays where that page began.
    The name of the execution that ran it (to stop too), None when it was not running."""
    stopped = table.call_if(
        "update_item",
        Key={"id": {"S": journal.backfill_key(backfill_id)}},
        UpdateExpression="SET backfillState = :stopped",
        ConditionExpression="backfillState = :running",
        ExpressionAttributeValues=table.to_dynamodb({":stopped": STOPPED, ":running": RUNNING}),
        ReturnValues="ALL_NEW",
    )
    if stopped is None:
        return None
    return str(table.from_dynamodb(stopped["Attributes"])["executionName"])


def hand_over(backfill_id: str, progress: dict[str, Any]) -> str | None:
    """Give the backfill to its next execution (a resume), RUNNING from its saved cursor, unless it changed since
    `progress` was read. The new execution's name (to start), None when it changed meanwhile."""
    number = int(progress.get("executions", 0)) + 1
    name = execution_name(backfill_id, number)
    handed_over = table.call_if(
        "update_item",
        Key={"id": {"S": journal.backfill_key(backfill_id)}},
        UpdateExpression="SET backfillState = :running, executionName = :name, executions = :number,"
        " executionPages = :zero",
        ConditionExpression="executionName = :current AND backfillState = :state",
        ExpressionAttributeValues=table.to_dynamodb(
            {
                ":running": RUNNING,
                ":name": name,
                ":number": number,
                ":zero": 0,
                ":current": str(progress["executionName"]),
                ":state": str(progress["backfillState"]),
            }
        ),
    )
    return None if handed_over is None else name
