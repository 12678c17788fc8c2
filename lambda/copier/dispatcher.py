"""The paced dispatcher (action `dispatch`, run every minute by a schedule rule, and at once by the
admission queue's consumer when nothing is planned): starts the backlog's oldest copies, as many as the
CopyImageSet schedule has slots for until just past its next run.

The backlog is the copy journal's PENDING entries (events from the admission queue, reconciliation,
backfill, `ops.cli retry`), durable for as long as they take. A run reads the schedule (the pacing
item's last slot, and the last slot this dispatcher planned: its executions may not have reserved yet),
counts the free slots before the next run's first (admission.plan_starts over HORIZON_SECONDS) and
starts that many executions, oldest entry first, each with input `{"admitted": {...}}`; every execution
reserves its own slot (ReserveCopySlot) and waits about a minute at most. So whatever the backlog's size,
executions never wait near their timeout, the function runs a minute's dozen executions at once, the
schedule does not idle between runs, and a copy started by hand takes the next free slot.

One run at a time: a lease on the schedule item, taken with a conditional write and given back at the
end, so a late or duplicated schedule delivery does nothing. Execution names are the entry's image set
version and dispatch count, so a run that dies between StartExecution and marking the entry STARTED
starts nothing twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from copier import admission, clock, journal, pacing, table
from copier.errors import FunctionMisconfigured, TableUnavailable
from copier.journal import JournalStatus
from copier.settings import load_settings

logger = Logger(child=True)
metrics = Metrics()

PERIOD_SECONDS = 60  # infra/dispatcher.py's schedule
SCHEDULE_KEY = "dispatcher#schedule"  # the lease, and the last slot the dispatcher planned
# A run takes seconds; the lease outlives a run that dies, and is given back when a run ends.
LEASE_SECONDS = 30
# A run plans past the next one by what an execution takes to reserve its slot (StartExecution,
# ValidateInput, a cold start) plus the lead: the schedule never idles between runs in a backlog.
START_MARGIN_SECONDS = 5
HORIZON_SECONDS = PERIOD_SECONDS + pacing.HOLD_LEAD_SECONDS + START_MARGIN_SECONDS
MAX_STARTS_PER_RUN = 120  # never reached at rate <= 1/s: a guard on the function's run time
# STARTED entries unchanged this long have their executions looked at, a few a run (copies take minutes).
SETTLE_AFTER_SECONDS = 3_600
SETTLE_BATCH = 25
ENDED_WITHOUT_A_WORD = ("FAILED", "TIMED_OUT", "ABORTED")
STILL_RUNNING = ("RUNNING", "PENDING_REDRIVE")


@dataclass(frozen=True)
class DispatchResult:
    started: list[str]  # names of the executions started
    oldest_pending_seconds: float  # the backlog's age after this run
    ran: bool = True  # False: another run held the lease


@lru_cache(maxsize=1)
def _step_functions() -> Any:
    return boto3.client("stepfunctions")


def execution_name(entry: dict[str, Any]) -> str:
    """Readable in the console, unique per dispatch of one image set version: `<id>-<version>-d<n>`."""
    return f"{entry['journalSourceId']}-{entry['sourceVersionId']}-d{int(entry.get('dispatches', 0))}"


def dispatch() -> DispatchResult:
    """One run: the schedule rule's every minute, or the admission queue's when the schedule is idle."""
    settings = load_settings()
    if not settings.state_machine_arn:
        raise FunctionMisconfigured("function settings are invalid: STATE_MACHINE_ARN")
    now = clock.now()
    schedule = _take_lease(now)
    if schedule is None:
        logger.info("Another dispatch run holds the lease: nothing to do")
        return DispatchResult([], _oldest_pending_seconds(now), ran=False)
    slots: list[float] = []
    started: list[str] = []
    try:
        _settle_ended_executions(now)
        rate = settings.copy_rate_per_second
        # The slot the next copy would reserve (ReserveCopySlot's rule), after the slots this dispatcher
        # planned already: executions it started may not have reserved theirs yet.
        first = pacing.next_slot(now, pacing.last_slot(), rate)
        planned = schedule.get("plannedUntil")
        if planned is not None:
            first = max(first, float(planned) + 1.0 / rate)
        slots = admission.plan_starts(now, first, MAX_STARTS_PER_RUN, rate, HORIZON_SECONDS)
        for entry in journal.pending(len(slots)):
            name = _start(entry, settings.state_machine_arn)
            if name:
                started.append(name)
    finally:
        # The executions started reserve the first slots in turn: the plan ends at the last of theirs.
        _give_back_lease(slots[len(started) - 1] if started else None)
    oldest = _oldest_pending_seconds(clock.now())
    metrics.add_metric(name="CopiesDispatched", unit=MetricUnit.Count, value=len(started))
    metrics.add_metric(name="OldestPendingAgeSeconds", unit=MetricUnit.Seconds, value=oldest)
    logger.info("Dispatch run", extra={"slots": len(slots), "started": len(started), "oldestPending": oldest})
    return DispatchResult(started, oldest)


def _start(entry: dict[str, Any], state_machine_arn: str) -> str | None:
    """Start the entry's copy and mark it STARTED; its name, or None when no execution of it now runs."""
    image_set_id, version = str(entry["journalSourceId"]), str(entry["sourceVersionId"])
    name = execution_name(entry)
    execution_input = {"admitted": {"sourceImageSetId": image_set_id, "sourceVersionId": version}}
    try:
        answer = _step_functions().start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(execution_input, sort_keys=True)
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
        return _name_in_use(entry, name, state_machine_arn)
    _mark_started(image_set_id, version, answer["executionArn"])
    return name


def _name_in_use(entry: dict[str, Any], name: str, state_machine_arn: str) -> str | None:
    """StartExecution refused the name (the same name and input while running is not an error): its execution
    ended, or runs with another input (a dispatcher of another version started it, mid-upgrade). One that runs
    (or waits for its redrive) copies this entry: taken as started. One that ended, with the entry still PENDING
    (even one that succeeded: its journal write was lost), ends nothing here: the next run starts the entry under
    a new name, which records its outcome, and its copy record keeps it one copy."""
    image_set_id, version = str(entry["journalSourceId"]), str(entry["sourceVersionId"])
    arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"
    status = _step_functions().describe_execution(executionArn=arn)["status"]
    if status in STILL_RUNNING:
        _mark_started(image_set_id, version, arn)
        return name
    journal.record(
        image_set_id,
        version,
        JournalStatus.PENDING,
        only_from=(JournalStatus.PENDING,),
        dispatches=int(entry.get("dispatches", 0)) + 1,
    )
    return None


def _mark_started(image_set_id: str, version: str, execution_arn: str) -> None:
    journal.record(
        image_set_id, version, JournalStatus.STARTED, only_from=(JournalStatus.PENDING,), executionId=execution_arn
    )


def _settle_ended_executions(now: float) -> None:
    """A STARTED entry whose execution ended without saying so (aborted by hand, timed out, failed before
    its first step) becomes FAILED, so that `ops.cli retry` finds it: nothing stays STARTED forever."""
    for entry in journal.oldest(JournalStatus.STARTED, SETTLE_BATCH, changed_before=now - SETTLE_AFTER_SECONDS):
        arn = entry.get("executionId")
        if not arn:
            continue
        status = _step_functions().describe_execution(executionArn=arn)["status"]
        if status in ENDED_WITHOUT_A_WORD:
            journal.record(
                str(entry["journalSourceId"]),
                str(entry["sourceVersionId"]),
                JournalStatus.FAILED,
                only_from=(JournalStatus.STARTED,),
                error=f"Execution{status.title().replace('_', '')}",
            )
            logger.warning("Execution ended without recording its copy", extra={"execution": arn, "status": status})


def is_idle() -> bool:
    """Nothing planned ahead: the admission queue's consumer dispatches at once rather than leave a new
    copy waiting up to a minute for the schedule (the first copy of a burst, a quiet day's import)."""
    schedule = table.get_item(SCHEDULE_KEY) or {}
    planned = schedule.get("plannedUntil")
    return planned is None or float(planned) < clock.now()


def _take_lease(now: float) -> dict[str, Any] | None:
    """The schedule item, leased to this run; None when another run holds it."""
    try:
        answer = table.call(
            "update_item",
            Key={"id": {"S": SCHEDULE_KEY}},
            UpdateExpression="SET leaseUntil = :until",
            ConditionExpression="attribute_not_exists(leaseUntil) OR leaseUntil <= :now",
            ExpressionAttributeValues=table.to_dynamodb(
                {":now": Decimal(repr(now)), ":until": Decimal(repr(now + LEASE_SECONDS))}
            ),
            ReturnValues="ALL_NEW",
        )
    except TableUnavailable as error:
        if table.is_condition_failure(error):
            return None
        raise
    return table.from_dynamodb(answer["Attributes"])


def _give_back_lease(planned_until: float | None) -> None:
    """End of a run: the lease free for the next, and the last slot it planned, if it started any."""
    if planned_until is None:
        table.call("update_item", Key={"id": {"S": SCHEDULE_KEY}}, UpdateExpression="REMOVE leaseUntil")
        return
    table.call(
        "update_item",
        Key={"id": {"S": SCHEDULE_KEY}},
        UpdateExpression="REMOVE leaseUntil SET plannedUntil = :planned",
        ExpressionAttributeValues=table.to_dynamodb({":planned": Decimal(repr(planned_until))}),
    )


def _oldest_pending_seconds(now: float) -> float:
    oldest = journal.oldest_pending_change()
    return 0.0 if oldest is None else max(0.0, now - oldest)
