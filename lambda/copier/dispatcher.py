"""The paced dispatcher (action `dispatch`, run every minute by a schedule rule): starts the backlog's
oldest copies, as many as the CopyImageSet schedule has slots for before its next run.

The backlog is the copy journal's PENDING entries (events from the admission queue, reconciliation,
backfill, `ops.cli retry`), durable for as long as they take. Each run reads the schedule (the pacing
item: the last slot handed out), counts the slots free before the next run (admission.plan_starts) and
starts that many executions, oldest entry first, each with input `{"admitted": {...}}`; every execution
reserves its own slot (ReserveCopySlot) and waits at most about one run. So whatever the backlog's size,
executions never wait near their timeout, the function's concurrency stays a minute's dozen executions,
and copies started by hand take the next free slots and are not starved.

One run at a time: a lease item, taken with a conditional write, so a late or duplicated schedule
delivery does nothing. Execution names are the entry's image set version and dispatch count, so a run
that dies between StartExecution and marking the entry STARTED starts nothing twice.
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
LEASE_KEY = "dispatcher#lease"
# A run holds the lease for a little less than the period, so the next scheduled run always finds it free.
LEASE_SECONDS = PERIOD_SECONDS - 5
MAX_STARTS_PER_RUN = 120  # never reached at rate <= 1/s: a guard on the function's run time
# STARTED entries unchanged this long have their executions looked at, a few a run (copies take minutes).
SETTLE_AFTER_SECONDS = 3_600
SETTLE_BATCH = 25
ENDED_WITHOUT_A_WORD = ("FAILED", "TIMED_OUT", "ABORTED")


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
    settings = load_settings()
    if not settings.state_machine_arn:
        raise FunctionMisconfigured("function settings are invalid: STATE_MACHINE_ARN")
    now = clock.now()
    if not _take_lease(now):
        logger.info("Another dispatch run holds the lease: nothing to do")
        return DispatchResult([], _oldest_pending_seconds(now), ran=False)
    _settle_ended_executions(now)
    # The slot the next copy would reserve, as ReserveCopySlot computes it.
    first = pacing.next_slot(now, pacing.last_slot(), settings.copy_rate_per_second)
    slots = admission.plan_starts(now, first, MAX_STARTS_PER_RUN, settings.copy_rate_per_second, PERIOD_SECONDS)
    started = [name for entry in journal.pending(len(slots)) if (name := _start(entry, settings.state_machine_arn))]
    oldest = _oldest_pending_seconds(clock.now())
    metrics.add_metric(name="CopiesDispatched", unit=MetricUnit.Count, value=len(started))
    metrics.add_metric(name="OldestPendingAgeSeconds", unit=MetricUnit.Seconds, value=oldest)
    logger.info("Dispatch run", extra={"slots": len(slots), "started": len(started), "oldestPending": oldest})
    return DispatchResult(started, oldest)


def _start(entry: dict[str, Any], state_machine_arn: str) -> str | None:
    """Start the entry's copy and mark it STARTED; None when its name was used by a run that ended."""
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
        # Same name and input while running is not an error: this one ended (aborted, timed out) with the
        # entry still PENDING. The next run starts it under a new name; its copy record keeps it one copy.
        journal.record(
            image_set_id,
            version,
            JournalStatus.PENDING,
            only_from=(JournalStatus.PENDING,),
            dispatches=int(entry.get("dispatches", 0)) + 1,
        )
        return None
    journal.record(
        image_set_id,
        version,
        JournalStatus.STARTED,
        only_from=(JournalStatus.PENDING,),
        executionId=answer["executionArn"],
    )
    return name


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


def _take_lease(now: float) -> bool:
    try:
        table.call(
            "put_item",
            Item=table.to_dynamodb(
                {"id": LEASE_KEY, "leaseUntil": Decimal(repr(now + LEASE_SECONDS)), "expiration": int(now) + 86_400}
            ),
            ConditionExpression="attribute_not_exists(id) OR leaseUntil <= :now",
            ExpressionAttributeValues=table.to_dynamodb({":now": Decimal(repr(now))}),
        )
    except TableUnavailable as error:
        if table.is_condition_failure(error):
            return False
        raise
    return True


def _oldest_pending_seconds(now: float) -> float:
    oldest = journal.oldest_pending_change()
    return 0.0 if oldest is None else max(0.0, now - oldest)
