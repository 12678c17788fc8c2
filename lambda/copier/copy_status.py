"""Looking at a started copy until its own version is COPIED or COPY_FAILED, within maxWaitSeconds.

The execution waits in AwaitCopy until HealthImaging's completion event wakes it (copier.wake) or, events
being best effort, its fallback wait runs out: completionWaitSeconds first, then twice as long each time up
to pollMaxSeconds. Either way it looks here, and the outcome is read from the version this copy produces
(GetImageSet with versionId), never from the image set's latest state or from the event: other writers
may move the image set on, or send an event about their own copy into it, before we look.

AwaitCopy itself can fail (its DynamoDB write refused: access denied after a key policy change, a disabled
key, throttling): then the copy is looked at here and, still copying, waits a growing while before AwaitCopy
tries again (`awaitFailed`: WaitBeforeAwaitingAgain), never straight back: that loop would cost a function
invocation and a GetImageSet each turn until maxWaitSeconds. Counted (AwaitCopyFailures, alarmed).
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import Enum
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from copier import clock, healthimaging, inconsistency, journal
from copier.errors import CopyWaitTimedOut, ImageSetNotFound, InvalidCopyRequest
from copier.journal import JournalStatus
from copier.models import CopyProgress, CopyRequest
from copier.settings import load_settings

logger = Logger(child=True)
metrics = Metrics()


def _produced_version(request: CopyRequest, image_set_id: str, version_id: str) -> dict[str, Any] | None:
    """The record of the version this copy produces; None while the service does not show it yet."""
    try:
        produced = healthimaging.get_image_set(request.datastore_id, image_set_id, version_id)
    except ImageSetNotFound:
        produced = None
    if produced is None or produced.get("imageSetState") == "DELETED":
        latest = healthimaging.get_image_set(request.datastore_id, image_set_id)  # raises if it is gone
        if latest.get("imageSetState") == "DELETED":
            metrics.add_metric(name="CopiesFailed", unit=MetricUnit.Count, value=1)
            raise ImageSetNotFound(f"destination image set {image_set_id} was deleted during the copy")
    return produced


# AwaitCopy fails with these when a completion event newer than the copy's wakeSince was recorded before its
# token: an AWS SDK integration's error is `<Service>.<ErrorName>`, "DynamoDb." here: the error's own name is
# matched, so that a spelling of the service's part cannot turn every such look into a failure. The previous
# definition wrote one item (UpdateItem: its condition fails); this one writes two in a transaction, whose
# cancellation names each item's reason in its message: a failed condition, or a conflict with the event's own
# write of the same moment (copier.wake); any other reason (throttled, a validation error) is a failure.
EVENT_ALREADY_RECORDED = ".ConditionalCheckFailedException"
TRANSACTION_CANCELLED = ".TransactionCanceledException"
EVENT_WROTE_FIRST = ("ConditionalCheckFailed", "TransactionConflict")


class Wake(Enum):
    """What ended AwaitCopy."""

    EVENT = "event"  # a completion event sent its token back
    TIMED_OUT = "timed out"  # its fallback wait ran out: no event came
    EVENT_FIRST = "event first"  # an event newer than wakeSince was recorded before the token: look at once
    FAILED = "failed"  # its write failed otherwise: look, then wait before AwaitCopy tries again
    POLLED = "polled"  # a definition that polled with Wait states (no AwaitCopy)


def wake_of(wake: object) -> Wake:
    if not isinstance(wake, dict):
        return Wake.POLLED
    if wake.get("wokenBy") == "event":
        return Wake.EVENT
    error = str(wake.get("Error", ""))
    if error == "States.Timeout":
        return Wake.TIMED_OUT
    if error.endswith(EVENT_ALREADY_RECORDED):
        return Wake.EVENT_FIRST
    if error.endswith(TRANSACTION_CANCELLED) and any(r in str(wake.get("Cause", "")) for r in EVENT_WROTE_FIRST):
        return Wake.EVENT_FIRST
    return Wake.FAILED


def landed_at(updated_at: object, event_at: object, called: int | None, now: float) -> int | None:
    """When the copy landed, for the dispatcher's measure of how long copies hold a concurrent copy: the produced
    version's own record (GetImageSet's `updatedAt`: when it became COPIED), bounded by the end of the event's
    second when an event woke it; None (the journal keeps this look's time) when neither can be trusted. An
    updatedAt not after the call (`called`; a service that did not move it when the copy landed) is not used: it
    would make copies look instant and over-plan the data store's concurrent copies. benchmarks/scale models
    copies' landings with it."""
    candidates: list[int] = []
    updated = updated_at.timestamp() if isinstance(updated_at, datetime) else updated_at
    if isinstance(updated, int | float) and called is not None and called < updated <= now:
        candidates.append(math.ceil(updated))
    if isinstance(event_at, int | float):
        candidates.append(int(event_at) + 1)  # by the end of the event's second the copy had landed
    return min(candidates) if candidates else None


def fallback_wait(previous: int, waited: int, *, initial: int, cap: int, max_wait: int) -> int:
    """The next wait for a copy that no event has woken yet: twice the last (at least `initial`), at most
    `cap`, never past maxWaitSeconds. Growing waits keep the state transitions per copy small however long a
    copy takes when the events do not come."""
    return max(1, min(max(previous * 2, initial), cap, max_wait - waited))


def check_copy(*, request: CopyRequest, progress: CopyProgress, wake: object = None) -> CopyProgress:
    """`wake`: what ended AwaitCopy (`{"wokenBy": "event", "eventAt": ...}`, or its error: States.Timeout, an event
    already recorded, a failed write); None from a definition that polled with Wait states."""
    if progress.destination_image_set_id is None or progress.destination_version_id is None:
        raise InvalidCopyRequest("copy.destinationVersionId: missing; the copy was not started")
    settings = load_settings()
    now = clock.now()
    woken = wake_of(wake)
    event_at = wake.get("eventAt") if isinstance(wake, dict) else None  # the second of the event that woke it
    if woken is Wake.FAILED:
        # Not an error of the copy's: it is looked at all the same, and waits before AwaitCopy tries again.
        metrics.add_metric(name="AwaitCopyFailures", unit=MetricUnit.Count, value=1)
        error = wake.get("Error") if isinstance(wake, dict) else None
        logger.warning(
            "AwaitCopy failed", extra={"error": str(error), "destinationImageSetId": progress.destination_image_set_id}
        )
    produced = _produced_version(request, progress.destination_image_set_id, progress.destination_version_id)
    workflow = produced.get("imageSetWorkflowStatus") if produced else "NOT_VISIBLE"
    if progress.started_at is None:  # saved by a release that counted its polls' waits
        waited = progress.waited_seconds + progress.next_poll_seconds
    else:
        waited = max(progress.waited_seconds, int(now) - progress.started_at)
    if woken is Wake.TIMED_OUT and workflow in ("COPIED", "COPY_FAILED"):
        # The copy ended before this look and no event said so (best effort): counted, not an error.
        metrics.add_metric(name="CompletionEventsMissed", unit=MetricUnit.Count, value=1)
    context = {
        "destinationImageSetId": progress.destination_image_set_id,
        "destinationVersionId": progress.destination_version_id,
        "imageSetWorkflowStatus": workflow,
        "waitedSeconds": waited,
    }

    if workflow == "COPY_FAILED":
        metrics.add_metric(name="CopiesFailed", unit=MetricUnit.Count, value=1)
        logger.warning("Copy failed", extra=context)
        raise inconsistency.judge_failure(request, progress)
    if workflow == "COPIED" and produced is not None:
        metrics.add_metric(name="CopiesCompleted", unit=MetricUnit.Count, value=1)
        forced = bool(produced.get("overrides", {}).get("forced")) or progress.forced
        logger.info("Copy completed", extra={**context, "forced": forced})
        journal.for_request(
            request,
            JournalStatus.FORCED if forced else JournalStatus.COPIED,
            copiedIntoImageSetId=progress.destination_image_set_id,
            copiedIntoVersionId=progress.destination_version_id,
            forced=forced,
            # How long copies hold a concurrent copy (the dispatcher's permits), without this look's own delay.
            landedAt=landed_at(produced.get("updatedAt"), event_at, progress.started_at, now),
        )
        return progress.model_copy(
            update={
                "status": "COPIED",
                "waited_seconds": waited,
                "polls": progress.polls + 1,
                "forced": forced,
                "next_poll_seconds": 0,
                "await_failed": False,
            }
        )
    if waited >= settings.max_wait_seconds:
        metrics.add_metric(name="CopyWaitTimeouts", unit=MetricUnit.Count, value=1)
        raise CopyWaitTimedOut(
            f"copy into {progress.destination_image_set_id} version {progress.destination_version_id}"
            f" still {workflow} after {waited} s (maxWaitSeconds {settings.max_wait_seconds})"
        )
    next_wait = fallback_wait(
        progress.next_poll_seconds,
        waited,
        initial=settings.poll_initial_seconds,
        cap=settings.poll_max_seconds,
        max_wait=settings.max_wait_seconds,
    )
    # The next AwaitCopy waits for events from this look on, and for none it has looked at: the one that woke
    # it (its second: events are per second), or one already recorded when AwaitCopy began (the same second
    # as this look at most). Without that, an event of this second would end the next wait at once.
    looked_at = int(event_at) + 1 if isinstance(event_at, int | float) else int(now) + (woken is Wake.EVENT_FIRST)
    return progress.model_copy(
        update={
            "status": "COPYING",
            "waited_seconds": waited,
            "polls": progress.polls + 1,
            "next_poll_seconds": next_wait,
            "wake_since": max(int(now), looked_at),
            "await_failed": woken is Wake.FAILED,
        }
    )
