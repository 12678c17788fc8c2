"""Starting a copy: at most one CopyImageSet per logical request.

Powertools idempotency makes a repeated request (duplicate event, task retry) return
the first answer. The ledger covers what idempotency cannot: a CopyImageSet whose
outcome is unknown (5xx, timeout, crash). Such a copy is confirmed from the image
sets' state, and only a copy confirmed NOT accepted is started again (next generation).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

from copier import force_policy, healthimaging, ledger
from copier.errors import (
    CopyConflict,
    CopyError,
    CopyWaitTimedOut,
    ImageSetNotFound,
    ImageSetVersionChanged,
)
from copier.models import CopyProgress, CopyRequest
from copier.settings import load_settings

logger = Logger(child=True)
metrics = Metrics()

# Stable across deploys: the default prefix holds the function name, which CDK may change.
IDEMPOTENCY_KEY_PREFIX = "healthimaging-copy#start-copy"
SNAPSHOT_CLOCK_SKEW_SECONDS = 5
MAX_CONFIRMATIONS = 10
COPY_DESTINATION_STATUSES = ("COPYING", "COPIED", "COPY_FAILED")


def _on_duplicate(response: object, data: object) -> object:
    metrics.add_metric(name="DuplicatesSuppressed", unit=MetricUnit.Count, value=1)
    logger.info("Duplicate copy request: returning the first answer, no CopyImageSet")
    return response


idempotency_config = IdempotencyConfig(
    expires_after_seconds=load_settings().idempotency_ttl_seconds,
    hash_function="sha256",
    response_hook=_on_duplicate,  # type: ignore[arg-type]
)
persistence = DynamoDBPersistenceLayer(table_name=load_settings().table_name)


def _usable(image_set: dict[str, object], role: str) -> None:
    image_set_id = image_set.get("imageSetId")
    if image_set.get("imageSetState") == "DELETED":
        raise ImageSetNotFound(f"{role} image set {image_set_id} is deleted")
    if image_set.get("imageSetState") == "LOCKED":
        raise CopyConflict(f"{role} image set {image_set_id} is locked ({image_set.get('imageSetWorkflowStatus')})")


def _latest_version(image_set: dict[str, object], requested: str | None, role: str) -> str:
    latest = str(image_set["versionId"])
    if requested is not None and requested != latest:
        raise ImageSetVersionChanged(
            f"{role} image set {image_set.get('imageSetId')} is at version {latest}, not {requested}"
        )
    return latest


@idempotent_function(
    data_keyword_argument="request",
    persistence_store=persistence,
    config=idempotency_config,
    output_serializer=PydanticSerializer(model=CopyProgress),
    key_prefix=IDEMPOTENCY_KEY_PREFIX,
)
def start_copy(*, request: CopyRequest) -> CopyProgress:
    """Start the copy once; later calls with the same request get this answer."""
    prior = ledger.open_attempt(request)
    if prior is not None:
        logger.warning("An earlier CopyImageSet for this request has no recorded outcome: confirming it")
        return CopyProgress(
            status="UNCONFIRMED",
            destination_image_set_id=request.destination_image_set_id,
            destination_version_id=prior["destinationVersionId"],
            source_version_id=prior["sourceVersionId"],
            requested_at=prior["requestedAt"],
            next_poll_seconds=load_settings().poll_initial_seconds,
            forced=request.force,
        )

    source = healthimaging.get_image_set(request.datastore_id, request.source_image_set_id)
    _usable(source, "source")
    source_version = _latest_version(source, request.source_version_id, "source")
    destination_version: str | None = None
    if request.destination_image_set_id:
        destination = healthimaging.get_image_set(request.datastore_id, request.destination_image_set_id)
        _usable(destination, "destination")
        destination_version = _latest_version(destination, request.destination_version_id, "destination")

    force_policy.ensure_force_allowed(request)
    requested_at = ledger.begin_attempt(
        request, source_version_id=source_version, destination_version_id=destination_version
    )
    try:
        response = healthimaging.copy_image_set(
            datastore_id=request.datastore_id,
            source_image_set_id=request.source_image_set_id,
            source_version_id=source_version,
            destination_image_set_id=request.destination_image_set_id,
            destination_version_id=destination_version,
            copiable_attributes=request.copiable_attributes,
            force=request.force,
            promote_to_primary=request.promote_to_primary,
        )
    except healthimaging.AmbiguousCopyOutcome as error:
        metrics.add_metric(name="AmbiguousCopyOutcomes", unit=MetricUnit.Count, value=1)
        logger.warning("CopyImageSet outcome unknown: will confirm before any new attempt", extra={"cause": str(error)})
        return CopyProgress(
            status="UNCONFIRMED",
            destination_image_set_id=request.destination_image_set_id,
            destination_version_id=destination_version,
            source_version_id=source_version,
            requested_at=requested_at,
            next_poll_seconds=load_settings().poll_initial_seconds,
            forced=request.force,
        )
    except CopyError:
        ledger.close_attempt(request)  # the service certainly refused: nothing to confirm
        raise

    destination_id = response["destinationImageSetProperties"]["imageSetId"]
    ledger.mark_destination(destination_id)  # before anything else can fail
    ledger.close_attempt(request)
    metrics.add_metric(name="CopiesStarted", unit=MetricUnit.Count, value=1)
    if request.force:
        metrics.add_metric(name="ForcedCopies", unit=MetricUnit.Count, value=1)
        logger.warning("Forced copy started", extra={"destinationImageSetId": destination_id})
    logger.info(
        "Copy started",
        extra={
            "destinationImageSetId": destination_id,
            "sourceVersionId": source_version,
            "destinationBaselineVersionId": destination_version,
        },
    )
    return CopyProgress(
        status="COPYING",
        destination_image_set_id=destination_id,
        destination_version_id=destination_version,
        source_version_id=source_version,
        requested_at=requested_at,
        next_poll_seconds=load_settings().poll_initial_seconds,
        forced=request.force,
    )


def confirm_copy(*, request: CopyRequest, progress: CopyProgress) -> CopyProgress:
    """Decide from the image sets' state whether an unconfirmed CopyImageSet was accepted."""
    if request.destination_image_set_id:
        destination = healthimaging.get_image_set(request.datastore_id, request.destination_image_set_id)
        moved = (
            progress.destination_version_id is not None
            and str(destination["versionId"]) != progress.destination_version_id
        )
        busy = destination.get("imageSetState") == "LOCKED" or destination.get("imageSetWorkflowStatus") == "COPYING"
        accepted_into = request.destination_image_set_id if (moved or busy) else None
    else:
        accepted_into = _new_destination_since(request, progress)
        if accepted_into is None and _is_locked(request.datastore_id, request.source_image_set_id):
            # The source is being copied from, but its new destination is not visible yet.
            if progress.polls + 1 >= MAX_CONFIRMATIONS:
                raise CopyWaitTimedOut(
                    f"could not confirm the copy of {request.source_image_set_id} after {MAX_CONFIRMATIONS} looks"
                )
            return progress.model_copy(update={"polls": progress.polls + 1})
    if accepted_into is not None:
        ledger.mark_destination(accepted_into)
        ledger.close_attempt(request)
        logger.info("Unconfirmed copy was accepted", extra={"destinationImageSetId": accepted_into})
        return progress.model_copy(update={"status": "COPYING", "destination_image_set_id": accepted_into})
    ledger.close_attempt(request)
    logger.info("Unconfirmed copy was not accepted: starting it again", extra={"generation": request.generation + 1})
    return progress.model_copy(
        update={
            "status": "NOT_ACCEPTED",
            "retry_request": request.model_copy(update={"generation": request.generation + 1}),
        }
    )


def _is_locked(datastore_id: str, image_set_id: str) -> bool:
    return healthimaging.get_image_set(datastore_id, image_set_id).get("imageSetState") == "LOCKED"


def _new_destination_since(request: CopyRequest, progress: CopyProgress) -> str | None:
    """A copy into a new image set: the study's image set created since the call that is a copy destination."""
    metadata = healthimaging.get_metadata(request.datastore_id, request.source_image_set_id)
    study_uid = metadata.get("Study", {}).get("DICOM", {}).get("StudyInstanceUID")
    if not study_uid or progress.requested_at is None:
        return None
    since = progress.requested_at - SNAPSHOT_CLOCK_SKEW_SECONDS
    candidates = sorted(
        (
            summary
            for summary in healthimaging.search_study(request.datastore_id, study_uid)
            if summary["imageSetId"] != request.source_image_set_id
            and summary.get("createdAt") is not None
            and summary["createdAt"].timestamp() >= since
        ),
        key=lambda summary: summary["createdAt"],
    )
    for summary in candidates:
        image_set = healthimaging.get_image_set(request.datastore_id, summary["imageSetId"])
        if image_set.get("imageSetWorkflowStatus") in COPY_DESTINATION_STATUSES:
            return str(summary["imageSetId"])
    return None
