"""The state machine's steps: one `action` each, payloads validated, errors counted.

| action           | state              | returns        |
|------------------|--------------------|----------------|
| validate         | ValidateInput      | CopyPlan       |
| find_primary     | FindPrimaryOfSeries| CopyPlan       |
| reserve_slot     | ReserveCopySlot    | CopySlot       |
| start_copy       | StartCopy          | CopyProgress   |
| confirm_copy     | ConfirmCopy        | CopyProgress   |
| check_copy       | CheckCopy          | CopyProgress   |
| authorise_force  | AuthoriseForce     | CopyRequest    |
| record_failure   | RecordFailure      | {}             |
| reconcile        | (a schedule rule)  | SweepResult    |
| dispatch         | (a schedule rule)  | DispatchResult |
| backfill_page    | BackfillPage       | PageResult     |
| prune_versions   | (a schedule rule)  | PruneResult    |

And two queues' batches of SQS records holding HealthImaging events: the admission queue's (`admit_batch`:
new image sets into the backlog) and the completion queue's (`wake_batch`: copy outcome events waking the
executions that wait for them). Records are told apart by the queue they come from, so a copy outcome
event never reaches admission.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from copier import (
    backfill,
    confirm,
    copy_start,
    copy_status,
    destination,
    dispatcher,
    force_policy,
    intake,
    journal,
    pacing,
    reconciliation,
    versions,
    wake,
)
from copier.errors import CopyConflict, CopyError, CopyQuotaExceeded, CopyThrottled, InvalidCopyRequest
from copier.journal import JournalStatus
from copier.models import CopyPlan, CopyProgress, CopyRequest, parse
from copier.settings import load_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

logger = Logger(child=True)
metrics = Metrics()
tracer = Tracer()

Action = Literal[
    "validate",
    "find_primary",
    "reserve_slot",
    "start_copy",
    "confirm_copy",
    "check_copy",
    "authorise_force",
    "record_failure",
    "reconcile",
    "dispatch",
    "backfill_page",
    "prune_versions",
]
_COUNTED_ERRORS: dict[type[CopyError], str] = {
    CopyConflict: "CopyConflicts",
    CopyThrottled: "CopyThrottles",
    CopyQuotaExceeded: "CopyQuotaExceeded",
}


class StepCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    execution_id: str | None = Field(default=None, alias="executionId")
    input: Any = None
    request: Any = None
    copy_: Any = Field(default=None, alias="copy")
    error: Any = None
    retry_count: int = Field(default=0, ge=0, alias="retryCount")
    slot_at: float | None = Field(default=None, alias="slotAt")
    planned: bool = False  # the dispatcher's slot (StartCopy)
    # The previous release's (0.1.0) ReserveCopySlot payload, {"action": "reserve_slot", "reservations": n}: its
    # executions in flight across the upgrade still send it (tests/test_upgrade.py); this release sends `slot`.
    reservations: int = Field(default=0, ge=0)
    slot: Any = None  # the copy's slot, handed through FindPrimaryOfSeries
    wake: Any = None  # what ended AwaitCopy (CheckCopy)


def run_step(event: Any) -> dict[str, Any]:
    call = parse(StepCall, event, "step payload")
    try:
        # One subsegment per step, annotated for X-Ray search; responses are not recorded.
        with tracer.provider.in_subsegment(f"## {call.action}") as subsegment:
            subsegment.put_annotation("action", call.action)
            return _dispatch(call)
    except CopyError as error:
        name = next((metric for kind, metric in _COUNTED_ERRORS.items() if isinstance(error, kind)), None)
        if name:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        logger.warning(
            "Step failed", extra={"action": call.action, "error": type(error).__name__, "reason": str(error)}
        )
        raise


def _dispatch(call: StepCall) -> dict[str, Any]:
    if call.action == "validate":
        # A plan, and its slot still to reserve (the dispatcher's input comes with both).
        return {**intake.plan_copy(call.input, execution_id=call.execution_id).wire(), "slot": {"reservations": 0}}
    if call.action == "reserve_slot":
        return pacing.reserve_copy_slot(call.slot, reservations=call.reservations).wire()
    if call.action == "reconcile":
        return asdict(reconciliation.sweep())
    if call.action == "dispatch":
        return asdict(dispatcher.dispatch())
    if call.action == "prune_versions":
        return asdict(versions.prune_versions())
    if call.action == "backfill_page":
        return backfill.backfill_page(call.input, execution_id=call.execution_id).wire()
    request = parse(CopyRequest, call.request, "step payload", prefix="request.")
    # The dispatcher hands its plan straight to the workflow (no ValidateInput): checked here, as there.
    intake.check_datastore(request.datastore_id, "request.datastoreId")
    if call.action == "find_primary":
        found = destination.find_primary_of_series(request).wire()
        return found if call.slot is None else {**found, "slot": call.slot}
    if call.action == "start_copy":
        progress = copy_start.start_copy(
            request=request,
            execution_id=call.execution_id,
            slot_at=call.slot_at,
            planned=call.planned,
            first_attempt=call.retry_count == 0,
        )
        return progress.model_copy(update={"attempts": call.retry_count + 1}).wire()
    if call.action == "confirm_copy":
        return confirm.confirm_copy(request=request).wire()
    if call.action == "authorise_force":
        return force_policy.authorise_force(request=request).wire()
    if call.action == "record_failure":
        error = call.error.get("Error") if isinstance(call.error, dict) else None
        journal.for_request(
            request,
            JournalStatus.FAILED,
            plan=CopyPlan(request=request.model_copy(update={"force": False})),
            error=str(error or "unknown"),
            executionId=call.execution_id,
        )
        return {}
    progress = parse(CopyProgress, call.copy_, "step payload", prefix="copy.")
    return copy_status.check_copy(request=request, progress=progress, wake=call.wake).wire()


def run_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A batch from one of the function's two queues, told apart by the queue it comes from."""
    records = event.get("Records") or [{}]
    completion_queue = load_settings().completion_queue_arn
    if completion_queue and records[0].get("eventSourceARN") == completion_queue:
        return wake_batch(event, context)
    return admit_batch(event, context)


def wake_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The completion queue's batch: each copy outcome event wakes the execution waiting for it, if one
    does (failed messages are reported, for SQS to redeliver, then dead-letter)."""
    from aws_lambda_powertools.utilities.batch import process_partial_response  # noqa: PLC0415 (see _batch)

    return dict(process_partial_response(event=event, record_handler=wake_message, processor=_batch(), context=context))


def wake_message(record: SQSRecord) -> None:
    try:
        wake.on_copy_event(_body(record))
    except CopyError as error:
        logger.warning("Completion event not used", extra={"error": type(error).__name__, "reason": str(error)})
        raise


def _body(record: SQSRecord) -> Any:
    try:
        return json.loads(record.body)
    except json.JSONDecodeError:
        raise InvalidCopyRequest("message body: not JSON") from None


def admit_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The admission queue's batch: each message into the backlog (failed ones reported, for SQS to
    redeliver), then, if the dispatcher has nothing planned, its run at once rather than within a minute."""
    from aws_lambda_powertools.utilities.batch import process_partial_response  # noqa: PLC0415 (see _batch)

    batch = _batch()
    answer = process_partial_response(event=event, record_handler=admit_message, processor=batch, context=context)
    if batch.success_messages and dispatcher.is_idle():
        try:
            dispatcher.dispatch(scheduled=False)
        except (CopyError, ClientError) as error:  # admitted all the same: the schedule's next run starts them
            logger.warning("Dispatch after admission failed", extra={"error": type(error).__name__})
    return dict(answer)


@lru_cache(maxsize=1)
def _batch() -> BatchProcessor:
    """Built on the first queue batch: the batch utilities add ~60 ms to an import, which every copy
    step's cold start would pay for nothing."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType  # noqa: PLC0415

    return BatchProcessor(event_type=EventType.SQS)


def admit_message(record: SQSRecord) -> None:
    """One admission queue message: a HealthImaging event into the backlog (or skipped, journaled).
    Raising makes it a batch item failure: SQS redelivers it, then moves it to the dead-letter queue."""
    try:
        plan = intake.admit_event(_body(record))
    except CopyError as error:
        logger.warning("Message not admitted", extra={"error": type(error).__name__, "reason": str(error)})
        raise
    if plan.skip:
        metrics.add_metric(name="CopiesSkipped", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="CopiesAdmitted", unit=MetricUnit.Count, value=1)
