"""Confirming a CopyImageSet whose answer never came: adopt it only on proof that it is ours,
start it again only when nothing of ours can have landed, and otherwise stop and say what to check.

The evidence, for the call recorded in the copy record (source version S, destination D at baseline B):
- into an existing image set, the call would have produced version B+1 of D. B+1 absent while D
  is still at B and unlocked: not accepted. B+1 COPIED holding the source's instances that B
  did not hold, with the same force: ours. B+1 COPIED without them: another writer's, so ours was
  refused. B+1 COPY_FAILED: whoever wrote it, nothing of ours landed. B already held every
  instance: content cannot tell, undecided.
- into a new image set, the call would have created an image set of the source's series, since
  the call, holding exactly the copied instances, that no other copy record of ours claims. One
  such: ours. None, and the source is not being copied: not accepted. Several: undecided.
"Not accepted" is trusted only once the call is older than the client's read timeout twice over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from copier import clock, copy_record, dicom, healthimaging
from copier.copy_record import CopyRecord, CopyStatus
from copier.copy_start import progress_of
from copier.errors import CopyOutcomeUndecided, ImageSetNotFound, InvalidCopyRequest
from copier.models import CopyProgress, CopyRequest
from copier.settings import load_settings

logger = Logger(child=True)
metrics = Metrics()

MAX_LOOKS = 12
SETTLE_SECONDS = 2 * healthimaging.COPY_READ_TIMEOUT_SECONDS
CLOCK_SKEW_SECONDS = 5


@dataclass(frozen=True)
class Finding:
    verdict: Literal["ours", "not-accepted", "unsettled", "undecided"]
    reason: str
    destination_image_set_id: str | None = None
    destination_version_id: str | None = None


def confirm_copy(*, request: CopyRequest) -> CopyProgress:
    record = copy_record.load(request)
    if record is None:
        raise InvalidCopyRequest("no copy record for this request: there is nothing to confirm")
    if record.status is CopyStatus.ACCEPTED:
        return progress_of(record)  # confirmed meanwhile (another execution of the same request)
    if record.status is not CopyStatus.CALLING:
        return CopyProgress(status="NOT_ACCEPTED")
    record = copy_record.count_look(record)
    finding = _into_new(request, record) if record.new_image_set else _into_existing(request, record)
    context = {"verdict": finding.verdict, "reason": finding.reason, "looks": record.looks}
    if finding.verdict == "ours":
        logger.info(
            "Unconfirmed copy proved ours", extra={**context, "destinationImageSetId": finding.destination_image_set_id}
        )
        accepted = copy_record.mark_accepted(
            record,
            destination_image_set_id=str(finding.destination_image_set_id),
            destination_version_id=str(finding.destination_version_id),
        )
        return progress_of(accepted)
    if finding.verdict == "not-accepted" and clock.now() - record.requested_at >= SETTLE_SECONDS:
        logger.info("Unconfirmed copy was not accepted: starting it again", extra=context)
        copy_record.mark_not_accepted(record)
        return CopyProgress(status="NOT_ACCEPTED")
    if finding.verdict == "undecided" or record.looks >= MAX_LOOKS:
        metrics.add_metric(name="UndecidedCopyOutcomes", unit=MetricUnit.Count, value=1)
        logger.error("Copy outcome cannot be decided", extra=context)
        raise CopyOutcomeUndecided(_operator_cause(request, record, finding))
    settings = load_settings()
    wait = min(settings.poll_initial_seconds * 2 ** (record.looks - 1), settings.poll_max_seconds)
    return CopyProgress(status="UNCONFIRMED", next_poll_seconds=wait, polls=record.looks)


def _operator_cause(request: CopyRequest, record: CopyRecord, finding: Finding) -> str:
    called = datetime.fromtimestamp(record.requested_at, tz=UTC).isoformat(timespec="seconds")
    where = (
        f"versions after {record.baseline_version_id} of image set {request.destination_image_set_id}"
        if not record.new_image_set
        else f"image sets created since {called} from the series of {request.source_image_set_id}"
    )
    return (
        f"cannot tell whether CopyImageSet of {request.source_image_set_id} version {record.source_version_id}"
        f" called at {called} was accepted ({finding.reason}, {record.looks} looks). Check {where}"
        " (ListImageSetVersions, SearchImageSets); if one holds this copy, nothing more is needed;"
        " if none does, start the copy again (python -m ops.cli start)."
    )


def _into_existing(request: CopyRequest, record: CopyRecord) -> Finding:
    destination_id = str(request.destination_image_set_id)
    baseline = str(record.baseline_version_id)
    expected = str(int(baseline) + 1)
    try:
        produced = healthimaging.get_image_set(request.datastore_id, destination_id, expected)
    except ImageSetNotFound:
        latest = healthimaging.get_image_set(request.datastore_id, destination_id)
        if latest.get("imageSetState") == "DELETED":
            raise ImageSetNotFound(f"destination image set {destination_id} was deleted") from None
        if str(latest.get("versionId")) == baseline and latest.get("imageSetState") != "LOCKED":
            return Finding("not-accepted", f"no version {expected}; the destination is still at {baseline}")
        return Finding("unsettled", f"version {expected} not visible yet")
    status = produced.get("imageSetWorkflowStatus")
    if status == "COPY_FAILED":
        return Finding("not-accepted", f"version {expected} failed: nothing of this copy landed")
    if status != "COPIED":
        return Finding("unsettled", f"version {expected} is {status}")
    if bool(produced.get("overrides", {}).get("forced")) != record.forced:
        return Finding("not-accepted", f"version {expected} was written with another force setting")
    source = healthimaging.get_metadata(request.datastore_id, request.source_image_set_id, record.source_version_id)
    copied = set().union(*dicom.selection(source, request.copiable_attributes).values())
    before = dicom.instances(healthimaging.get_metadata(request.datastore_id, destination_id, baseline))
    if copied <= before:
        return Finding("undecided", f"version {baseline} already held every instance of the source")
    after = dicom.instances(healthimaging.get_metadata(request.datastore_id, destination_id, expected))
    if copied <= after:
        return Finding("ours", f"version {expected} holds the source's instances", destination_id, expected)
    return Finding("not-accepted", f"version {expected} was written by another copy")


def _into_new(request: CopyRequest, record: CopyRecord) -> Finding:
    source = healthimaging.get_metadata(request.datastore_id, request.source_image_set_id, record.source_version_id)
    copied = dicom.selection(source, request.copiable_attributes)
    if not copied:
        return Finding("undecided", "the source holds no series to look for")
    since = datetime.fromtimestamp(record.requested_at - CLOCK_SKEW_SECONDS, tz=UTC)
    summaries = healthimaging.search(
        request.datastore_id,
        [
            healthimaging.equal("DICOMSeriesInstanceUID", min(copied)),
            healthimaging.between("createdAt", since, datetime.fromtimestamp(clock.now() + 1, tz=UTC)),
        ],
    )
    matches, unsettled = [], False
    for summary in summaries:
        candidate = str(summary["imageSetId"])
        if candidate == request.source_image_set_id or any(
            claim.id != record.id for claim in copy_record.claims(candidate)
        ):
            continue  # the source itself, or the output of another copy of ours
        first = healthimaging.get_image_set(request.datastore_id, candidate, "1")
        status = first.get("imageSetWorkflowStatus")
        if status == "COPYING":
            unsettled = True  # a copy destination whose content cannot be read yet
        elif status == "COPIED" and bool(first.get("overrides", {}).get("forced")) == record.forced:
            held = healthimaging.get_metadata(request.datastore_id, candidate, "1")
            if dicom.selection(held, None) == copied:
                matches.append(candidate)
    if len(matches) == 1:
        return Finding("ours", "one new image set holds exactly the copied instances", matches[0], "1")
    if len(matches) > 1:
        return Finding("undecided", f"{len(matches)} new image sets hold the copied instances: {', '.join(matches)}")
    if unsettled:
        return Finding("unsettled", "a new image set of the series is still being written")
    source_now = healthimaging.get_image_set(request.datastore_id, request.source_image_set_id)
    if source_now.get("imageSetState") == "LOCKED":
        return Finding("unsettled", "the source is being copied from")
    return Finding("not-accepted", "no new image set of the series since the call")
