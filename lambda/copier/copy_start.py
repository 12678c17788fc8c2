"""Starting a copy: at most one CopyImageSet per copy request whose data lands.

Powertools idempotency returns the first answer to a repeated request (duplicate event,
task retry) and keeps two starts of one request from running at once. The copy record
(copy_record.py) holds what idempotency cannot: a call whose answer never came (5xx, timeout,
crash) stays CALLING, and the next start raises CopyOutcomeUnknown so the workflow confirms
it (confirm.py) instead of calling again; a call the service answered is ACCEPTED with the
destination and the version this copy produces, written the moment the answer arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

from copier import clock, copy_record, force_policy, healthimaging, inconsistency, journal, pacing, table
from copier.copy_record import CopyRecord, CopyStatus
from copier.errors import (
    CopyConflict,
    CopyError,
    CopyFailed,
    CopyOutcomeUnknown,
    CopyRecordChanged,
    ImageSetNotFound,
    ImageSetVersionChanged,
    InvalidCopyRequest,
    TableUnavailable,
)
from copier.journal import JournalStatus
from copier.models import CopyPlan, CopyProgress, CopyRequest
from copier.settings import load_settings

logger = Logger(child=True)
metrics = Metrics()

# Stable across deploys: the default prefix holds the function name, which CDK may change.
IDEMPOTENCY_KEY_PREFIX = "healthimaging-copy#start-copy"
# Calls that got no answer and landed nothing: past this, the service is failing, not unlucky.
MAX_UNANSWERED_CALLS = 3
FAILED = "COPY_FAILED"


def _on_duplicate(response: object, data: object) -> object:
    metrics.add_metric(name="DuplicatesSuppressed", unit=MetricUnit.Count, value=1)
    logger.info("Duplicate copy request: returning the first answer, no CopyImageSet")
    return response


idempotency_config = IdempotencyConfig(
    expires_after_seconds=load_settings().copy_record_retention_seconds,
    hash_function="sha256",
    response_hook=_on_duplicate,  # type: ignore[arg-type]
)


@lru_cache(maxsize=1)
def persistence() -> DynamoDBPersistenceLayer:
    """Built on first use, on the function's one DynamoDB client: a cold start that only polls a
    copy (CheckCopy, the most frequent step) creates no DynamoDB client."""
    return DynamoDBPersistenceLayer(table_name=load_settings().table_name, boto3_client=table.client())


def progress_of(record: CopyRecord) -> CopyProgress:
    """The wait loop's view of an accepted copy: it waits for the completion event from the call on."""
    called = int(record.requested_at)
    return CopyProgress(
        status="COPYING",
        destination_image_set_id=record.destination_image_set_id,
        destination_version_id=record.destination_version_id,
        baseline_version_id=record.baseline_version_id,
        source_version_id=record.source_version_id,
        next_poll_seconds=load_settings().completion_wait_seconds,
        forced=record.forced,
        started_at=called,
        wake_since=called,
    )


def _usable(image_set: dict[str, object], role: str) -> None:
    image_set_id = image_set.get("imageSetId")
    if image_set.get("imageSetState") == "DELETED":
        raise ImageSetNotFound(f"{role} image set {image_set_id} is deleted")
    if image_set.get("imageSetState") == "LOCKED":
        raise CopyConflict(f"{role} image set {image_set_id} is locked ({image_set.get('imageSetWorkflowStatus')})")


def _source_version(source: dict[str, Any], requested: str | None) -> str:
    latest = str(source["versionId"])
    if requested is not None and requested != latest:
        raise ImageSetVersionChanged(
            f"source image set {source.get('imageSetId')} is at version {latest}, not {requested}"
        )
    return latest


def _baseline_version(request: CopyRequest, destination: dict[str, Any]) -> str:
    """The destination's version to copy onto: the latest, if the request pinned none or the versions
    after the pinned one all failed (a failed copy keeps the content it was copied onto: the
    destination has not moved on, whether the failure was ours or another writer's)."""
    latest = str(destination["versionId"])
    pinned = request.destination_version_id
    if pinned is None or pinned == latest:
        return latest
    moved = ImageSetVersionChanged(
        f"destination image set {request.destination_image_set_id} is at version {latest}, not {pinned}"
    )
    if int(pinned) > int(latest):
        raise moved
    for version in range(int(pinned) + 1, int(latest) + 1):
        later = healthimaging.get_image_set(request.datastore_id, str(request.destination_image_set_id), str(version))
        if later.get("imageSetWorkflowStatus") != FAILED:
            raise moved
    return latest


def start_copy(
    *,
    request: CopyRequest,
    execution_id: str | None = None,
    slot_at: float | None = None,
    planned: bool = False,
    first_attempt: bool = True,
) -> CopyProgress:
    """Start the copy once, calling CopyImageSet on its slot (`slot_at`: the dispatcher's, `planned`, or one
    ReserveCopySlot reserved); later calls with the same request get this answer (Powertools idempotency:
    keyed on the request alone)."""
    progress: CopyProgress = _idempotent_start_copy()(
        request=request, execution_id=execution_id, slot_at=slot_at, planned=planned, first_attempt=first_attempt
    )
    if progress.wake_since is None:
        # An answer the previous release saved (kept copyRecordRetentionDays) has none, and AwaitCopy's condition
        # needs one (a missing one fails the execution: States.Runtime, which no catch takes): from now on.
        return progress.model_copy(update={"wake_since": int(clock.now())})
    return progress


@lru_cache(maxsize=1)
def _idempotent_start_copy() -> Callable[..., CopyProgress]:
    return idempotent_function(
        data_keyword_argument="request",
        persistence_store=persistence(),
        config=idempotency_config,
        output_serializer=PydanticSerializer(model=CopyProgress),
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )(_start_copy)


def _unread(request: CopyRequest, *, planned: bool, first_attempt: bool) -> bool:
    """The dispatcher's snapshot copy, first attempt: the backlog admitted its source version, and a new image
    set has no baseline to read. Nothing is read before the call: CopyImageSet's own answer says whether the
    source is locked, moved on or gone (a refusal is retried, reading first), and neither is the copy record
    (the write that begins the call reads it). The reads are GetImageSet calls, whose own quota (25 TPS by
    default) every copy a second shares, and DynamoDB calls that every copy would pay for a rare repeat."""
    return _source_known(request, planned=planned, first_attempt=first_attempt) and not request.destination_image_set_id


def _source_known(request: CopyRequest, *, planned: bool, first_attempt: bool) -> bool:
    """The dispatcher's copy, first attempt, its source version given: admitted by the backlog, and under
    merge-into-primary read by FindPrimaryOfSeries on this same slot, seconds ago. CopyImageSet's own answer says
    whether the source moved on, is locked or gone since (a refusal is retried, reading first): one GetImageSet a
    copy fewer against its quota (copier.budgets)."""
    return planned and first_attempt and request.source_version_id is not None


def _versions(request: CopyRequest, *, source_known: bool) -> tuple[str, str | None]:
    """The source version to copy (read, unless known) and the destination's baseline, read."""
    if source_known:
        source_version = str(request.source_version_id)
    else:
        source = healthimaging.get_image_set(request.datastore_id, request.source_image_set_id)
        _usable(source, "source")
        source_version = _source_version(source, request.source_version_id)
    if not request.destination_image_set_id:
        return source_version, None
    destination = healthimaging.get_image_set(request.datastore_id, request.destination_image_set_id)
    _usable(destination, "destination")
    return source_version, _baseline_version(request, destination)


def _start_copy(
    *, request: CopyRequest, execution_id: str | None, slot_at: float | None, planned: bool, first_attempt: bool
) -> CopyProgress:
    unread = _unread(request, planned=planned, first_attempt=first_attempt)
    previous = None
    if not unread:
        # What the copy record settles is answered before any read: an accepted copy, a call to confirm.
        previous = copy_record.load(request)
        accepted = _settled(previous, request)
        if accepted is not None:
            return _already_accepted(accepted)
    source_known = _source_known(request, planned=planned, first_attempt=first_attempt)
    source_version, baseline_version = (
        (str(request.source_version_id), None) if unread else _versions(request, source_known=source_known)
    )
    force_policy.ensure_force_allowed(request)
    # Held here, after the reads whose durations vary: the calls land on their slots, 1/rate apart.
    clock.sleep(pacing.hold_seconds(slot_at, clock.now()))
    if unread:
        record = _begin_unread_call(request, source_version, execution_id)
        if record.status is CopyStatus.ACCEPTED:
            return _already_accepted(record)
    else:
        record = copy_record.begin_call(
            request,
            previous=previous,
            source_version_id=source_version,
            baseline_version_id=baseline_version,
            execution_id=execution_id,
        )
    try:
        response = healthimaging.copy_image_set(
            datastore_id=request.datastore_id,
            source_image_set_id=request.source_image_set_id,
            source_version_id=source_version,
            destination_image_set_id=request.destination_image_set_id,
            destination_version_id=baseline_version,
            copiable_attributes=request.copiable_attributes,
            force=request.force,
            promote_to_primary=request.promote_to_primary,
        )
    except CopyOutcomeUnknown as unknown:
        metrics.add_metric(name="AmbiguousCopyOutcomes", unit=MetricUnit.Count, value=1)
        logger.warning("CopyImageSet outcome unknown: confirming before any new call", extra={"cause": str(unknown)})
        raise  # the record stays CALLING: the workflow confirms it
    except CopyError as refusal:
        copy_record.mark_refused(record, type(refusal).__name__)  # certainly refused: a later call is safe
        if baseline_version is not None and isinstance(refusal, CopyConflict | InvalidCopyRequest):
            raise inconsistency.judge_refusal(
                request, refusal, source_version_id=source_version, baseline_version_id=baseline_version
            ) from None
        raise

    produced = response["destinationImageSetProperties"]
    answer = {"destinationImageSetId": produced["imageSetId"], "destinationVersionId": str(produced["latestVersionId"])}
    try:
        record = copy_record.mark_accepted(
            record,
            destination_image_set_id=answer["destinationImageSetId"],
            destination_version_id=answer["destinationVersionId"],
        )
    except (TableUnavailable, CopyRecordChanged) as lost:
        # The table's own retries are spent: the answer survives in the log, and confirmation finds it.
        logger.error("CopyImageSet answered but its answer could not be recorded", extra=answer)
        raise CopyOutcomeUnknown(f"the answer to CopyImageSet could not be recorded ({lost})") from None
    if not planned:  # the dispatcher's copies are journaled STARTED already; their destination is at COPIED
        journal.for_request(
            request,
            JournalStatus.STARTED,
            plan=CopyPlan(request=request.model_copy(update={"force": False})),  # a console request's
            decision="copy",
            executionId=execution_id,
            copiedIntoImageSetId=record.destination_image_set_id,
            copiedIntoVersionId=record.destination_version_id,
            forced=request.force,
        )
    metrics.add_metric(name="CopiesStarted", unit=MetricUnit.Count, value=1)
    if request.force:
        metrics.add_metric(name="ForcedCopies", unit=MetricUnit.Count, value=1)
        logger.warning("Forced copy started", extra={"destinationImageSetId": record.destination_image_set_id})
    logger.info(
        "Copy started",
        extra={
            "destinationImageSetId": record.destination_image_set_id,
            "destinationVersionId": record.destination_version_id,
            "baselineVersionId": baseline_version,
            "sourceVersionId": source_version,
        },
    )
    return progress_of(record)


def _settled(previous: CopyRecord | None, request: CopyRequest) -> CopyRecord | None:
    """What an earlier record of the request settles: ACCEPTED, its record (no second CopyImageSet); CALLING,
    an answer never recorded (the workflow confirms it); MAX_UNANSWERED_CALLS unanswered, a failure; None
    when a new call is safe (none yet, or the last certainly did not land)."""
    if previous is None or previous.status in (CopyStatus.REFUSED, CopyStatus.NOT_ACCEPTED):
        if previous is not None and previous.unanswered >= MAX_UNANSWERED_CALLS:
            raise CopyFailed(
                f"{previous.unanswered} CopyImageSet calls of {request.source_image_set_id} got no answer and"
                " landed nothing: HealthImaging is failing; start the copy again later"
            )
        return None
    if previous.status is CopyStatus.CALLING:
        raise CopyOutcomeUnknown(
            f"an earlier CopyImageSet of {request.source_image_set_id} has no recorded answer: confirming it"
        )
    return previous


def _already_accepted(record: CopyRecord) -> CopyProgress:
    logger.info("Copy already accepted: no new CopyImageSet", extra={"calls": record.calls})
    return progress_of(record)


def _begin_unread_call(request: CopyRequest, source_version: str, execution_id: str | None) -> CopyRecord:
    """The copy record CALLING, written just before an unread call; an ACCEPTED one, if the request has one.

    The write expects no record and reads the one it finds (one DynamoDB call for the usual first call); a
    record found settles as ever (_settled), or a new call is recorded on condition no other was meanwhile."""
    try:
        return copy_record.begin_call(
            request,
            previous=None,
            source_version_id=source_version,
            baseline_version_id=None,
            execution_id=execution_id,
        )
    except copy_record.RecordExists as found:
        previous = found.record
    accepted = _settled(previous, request)
    if accepted is not None:
        return accepted
    return copy_record.begin_call(
        request,
        previous=previous,
        source_version_id=source_version,
        baseline_version_id=None,
        execution_id=execution_id,
    )
