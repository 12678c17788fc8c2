"""Polling a started copy until COPIED or COPY_FAILED, with growing waits and a bound."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from copier import healthimaging
from copier.errors import CopyFailed, CopyWaitTimedOut, ImageSetNotFound, InconsistentMetadata, InvalidCopyRequest
from copier.models import CopyProgress, CopyRequest
from copier.settings import load_settings

logger = Logger(child=True)
metrics = Metrics()


def check_copy(*, request: CopyRequest, progress: CopyProgress) -> CopyProgress:
    if progress.destination_image_set_id is None:
        raise InvalidCopyRequest("copy.destinationImageSetId: missing; the copy was not started")
    settings = load_settings()
    destination = healthimaging.get_image_set(request.datastore_id, progress.destination_image_set_id)
    state = destination.get("imageSetState")
    workflow = destination.get("imageSetWorkflowStatus")
    version = str(destination.get("versionId"))
    waited = progress.waited_seconds + progress.next_poll_seconds
    baseline = progress.destination_version_id
    newer = baseline is None or int(version) > int(baseline)
    context = {
        "destinationImageSetId": progress.destination_image_set_id,
        "versionId": version,
        "imageSetState": state,
        "imageSetWorkflowStatus": workflow,
        "waitedSeconds": waited,
    }

    if state == "DELETED":
        metrics.add_metric(name="CopiesFailed", unit=MetricUnit.Count, value=1)
        raise ImageSetNotFound(f"destination image set {progress.destination_image_set_id} was deleted during the copy")
    if state == "ACTIVE" and workflow == "COPY_FAILED":
        metrics.add_metric(name="CopiesFailed", unit=MetricUnit.Count, value=1)
        message = str(destination.get("message", ""))
        names = healthimaging.element_names(message)
        logger.warning("Copy failed", extra={**context, "elements": names})
        if healthimaging.is_inconsistent_metadata(message):
            raise InconsistentMetadata(
                f"COPY_FAILED on {progress.destination_image_set_id}: inconsistent metadata"
                + (f" in {', '.join(names)}" if names else ""),
                names,
            )
        raise CopyFailed(
            f"COPY_FAILED on {progress.destination_image_set_id} version {version}"
            + (f" ({', '.join(names)})" if names else "")
        )
    if state == "ACTIVE" and workflow == "COPIED" and newer:
        metrics.add_metric(name="CopiesCompleted", unit=MetricUnit.Count, value=1)
        forced = bool(destination.get("overrides", {}).get("forced")) or progress.forced
        logger.info("Copy completed", extra={**context, "forced": forced})
        return progress.model_copy(
            update={
                "status": "COPIED",
                "destination_version_id": version,
                "waited_seconds": waited,
                "polls": progress.polls + 1,
                "forced": forced,
                "next_poll_seconds": 0,
            }
        )
    if waited >= settings.max_wait_seconds:
        metrics.add_metric(name="CopyWaitTimeouts", unit=MetricUnit.Count, value=1)
        raise CopyWaitTimedOut(
            f"copy into {progress.destination_image_set_id} still {workflow} after {waited} s"
            f" (maxWaitSeconds {settings.max_wait_seconds})"
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
