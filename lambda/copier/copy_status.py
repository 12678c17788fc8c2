"""Polling a started copy until its own version is COPIED or COPY_FAILED, with growing waits and a bound.

The outcome is read from the version this copy produces (GetImageSet with versionId), never from
the image set's latest state: other writers may move the image set on before we look.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from copier import healthimaging, inconsistency, journal
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


def check_copy(*, request: CopyRequest, progress: CopyProgress) -> CopyProgress:
    if progress.destination_image_set_id is None or progress.destination_version_id is None:
        raise InvalidCopyRequest("copy.destinationVersionId: missing; the copy was not started")
    settings = load_settings()
    produced = _produced_version(request, progress.destination_image_set_id, progress.destination_version_id)
    workflow = produced.get("imageSetWorkflowStatus") if produced else "NOT_VISIBLE"
    waited = progress.waited_seconds + progress.next_poll_seconds
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
        )
        return progress.model_copy(
            update={
                "status": "COPIED",
                "waited_seconds": waited,
                "polls": progress.polls + 1,
                "forced": forced,
                "next_poll_seconds": 0,
            }
        )
    if waited >= settings.max_wait_seconds:
        metrics.add_metric(name="CopyWaitTimeouts", unit=MetricUnit.Count, value=1)
        raise CopyWaitTimedOut(
            f"copy into {progress.destination_image_set_id} version {progress.destination_version_id}"
            f" still {workflow} after {waited} s (maxWaitSeconds {settings.max_wait_seconds})"
        )
    # Growing waits keep the state transitions per copy small however long it takes.
    next_wait = min(max(progress.next_poll_seconds * 2, settings.poll_initial_seconds), settings.poll_max_seconds)
    next_wait = min(next_wait, settings.max_wait_seconds - waited)
    return progress.model_copy(
        update={
            "status": "COPYING",
            "waited_seconds": waited,
            "polls": progress.polls + 1,
            "next_poll_seconds": max(next_wait, 1),
        }
    )
