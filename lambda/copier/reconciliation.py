"""Reconciliation (action `reconcile`, run by a schedule rule): HealthImaging's events are best
effort, so a scheduled sweep finds the image sets no event announced and admits them as the event
would have.

Each sweep searches the image sets created (or updated, when "Image Set Updated" triggers copies) in
the last two intervals, up to a grace period ago (events in flight get that long to be journaled),
so consecutive windows overlap. Every one without a journal entry goes through the same copy policy
as an event (intake.plan_for_image_set: copy-storm guard, merge-into-primary, the journal) and, when
the policy copies it, an execution is started with the console contract's input, named after the
image set version, so that two sweeps never start it twice.

Cost per sweep: SearchImageSets pages of 50 for the image sets in the window, one journal read per
image set found; for each one missed, the policy's reads and one StartExecution (at most
MAX_STARTS_PER_SWEEP a sweep).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from copier import clock, destination, healthimaging, intake, journal
from copier.errors import CopyError, FunctionMisconfigured
from copier.journal import JournalStatus
from copier.models import CopyRequest
from copier.settings import CopyPolicy, load_settings

logger = Logger(child=True)
metrics = Metrics()

GRACE_SECONDS = 300
# One sweep stays well inside the function's timeout; more missed than this is a backfill's work.
MAX_STARTS_PER_SWEEP = 300
UPDATED = "Image Set Updated"


@dataclass(frozen=True)
class SweepResult:
    image_sets_seen: int
    missed: int  # image set versions the policy copies that no event announced
    started: list[str]  # executions started for them
    oldest_pending_seconds: float


@lru_cache(maxsize=1)
def _step_functions() -> Any:
    return boto3.client("stepfunctions")


def sweep(*, state_machine_arn: str | None = None) -> SweepResult:
    """One sweep; the state machine to start is the stack's (STATE_MACHINE_ARN) unless named."""
    settings = load_settings()
    state_machine_arn = state_machine_arn or settings.state_machine_arn
    if not state_machine_arn:
        raise FunctionMisconfigured("function settings are invalid: STATE_MACHINE_ARN")
    until = clock.now() - GRACE_SECONDS
    since = until - 2 * settings.reconciliation_interval_minutes * 60
    field = "updatedAt" if UPDATED in settings.trigger_detail_types else "createdAt"
    filters = [
        healthimaging.between(field, datetime.fromtimestamp(since, tz=UTC), datetime.fromtimestamp(until, tz=UTC))
    ]
    if settings.copy_policy is CopyPolicy.MERGE_INTO_PRIMARY:
        filters.append(healthimaging.equal("isPrimary", False))
    summaries = [] if settings.copy_policy is CopyPolicy.OFF else healthimaging.search(settings.datastore_id, filters)
    missed = 0
    started: list[str] = []
    for summary in summaries:
        if len(started) >= MAX_STARTS_PER_SWEEP:
            logger.warning(
                "Sweep stopped at its cap: run a backfill for the window", extra={"cap": MAX_STARTS_PER_SWEEP}
            )
            break
        image_set_id, version = str(summary["imageSetId"]), str(summary["version"])
        if journal.is_recorded(image_set_id, version):
            continue  # an event (or an earlier sweep) got there
        plan = intake.plan_for_image_set(
            image_set_id,
            version,
            is_primary=bool(summary.get("isPrimary")),
            why="missed event, found by reconciliation",
        )
        if plan.skip or plan.request is None:
            continue  # journaled as skipped (e.g. this pipeline's own output): nothing was missed
        missed += 1
        arn = _start(plan.request, resolve_destination=plan.resolve_destination, state_machine_arn=state_machine_arn)
        if arn:
            started.append(arn)
    oldest = journal.oldest_change(JournalStatus.PENDING)
    oldest_pending = clock.now() - oldest if oldest is not None else 0.0
    metrics.add_metric(name="MissedEventsFound", unit=MetricUnit.Count, value=missed)
    metrics.add_metric(name="OldestPendingAgeSeconds", unit=MetricUnit.Seconds, value=oldest_pending)
    logger.info(
        "Reconciliation sweep",
        extra={
            "imageSetsSeen": len(summaries),
            "missed": missed,
            "started": len(started),
            "oldestPending": oldest_pending,
        },
    )
    return SweepResult(len(summaries), missed, started, oldest_pending)


def _start(request: CopyRequest, *, resolve_destination: bool, state_machine_arn: str) -> str | None:
    """Start the copy the policy decided on, named after its image set version; the execution, if new."""
    if resolve_destination:
        try:
            resolved = destination.find_primary_of_series(request)
        except CopyError as error:
            journal.for_request(request, JournalStatus.FAILED, error=type(error).__name__)
            return None
        if resolved.request is None:
            return None
        request = resolved.request
    key = f"{request.source_image_set_id}#{request.source_version_id}"
    name = "reconcile-" + hashlib.sha256(key.encode()).hexdigest()[:40]
    execution_input = json.dumps(request.wire())
    journal.for_request(request, JournalStatus.PENDING, admitted_as=execution_input)
    try:
        answer = _step_functions().start_execution(stateMachineArn=state_machine_arn, name=name, input=execution_input)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
        return None
    return str(answer["executionArn"])
