"""Confirming a CopyImageSet whose answer never came: adopt it only on proof that it is ours,
start it again only when nothing of ours can have landed, and otherwise stop and say what to check.

The evidence, for the call recorded in the copy record (source version S, destination D at baseline B):
- into an existing image set, the call would have produced version B+1 of D. B+1 absent while D is
  still at B and unlocked: not accepted. B+1 still being written: look again. B+1 COPIED, claimed by
  no other copy record, holding the copied instances with the source's own elements, which B did not
  hold: ours. B+1 failed, or written by another writer (other content, an update): nothing of ours
  landed, so ours was refused or failed: start again. B already held every copied instance: content
  cannot tell, undecided.
- into a new image set, the call would have created an image set of the source's series, since the
  call, holding exactly the copied instances with the source's Patient, Study, Series and instance
  elements. One such, claimed by no other copy record: ours. None, and the source is not being copied
  from: not accepted. Several: undecided.
A forced copy shows `overrides.forced`: a match whose flag differs from ours is undecided, not proof.
"Not accepted" is trusted only once the call is older than twice the client's read timeout; looking
stops (undecided) once the call is older than maxWaitSeconds. An adopted version is claimed in the
same write, so no two copy records can adopt one version.
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
from copier.errors import CopyOutcomeUndecided, CopyRecordChanged, ImageSetNotFound
from copier.metadata import MetadataSummary
from copier.models import CopyProgress, CopyRequest
from copier.settings import load_settings

logger = Logger(child=True)
metrics = Metrics()

SETTLE_SECONDS = 2 * healthimaging.COPY_READ_TIMEOUT_SECONDS
CLOCK_SKEW_SECONDS = 5
IN_PROGRESS = {"COPYING", "COPYING_WITH_READ_ONLY_ACCESS", "UPDATING", "UPDATING_FOR_STUDY_CONSISTENCY", "IMPORTING"}


@dataclass(frozen=True)
class Finding:
    verdict: Literal["ours", "not-accepted", "unsettled", "undecided"]
    reason: str
    destination_image_set_id: str | None = None
    destination_version_id: str | None = None


def confirm_copy(*, request: CopyRequest) -> CopyProgress:
    record = copy_record.load(request)
    if record is None or record.status in (CopyStatus.REFUSED, CopyStatus.NOT_ACCEPTED):
        return CopyProgress(status="NOT_ACCEPTED")  # nothing unanswered to confirm: start (again)
    if record.status is CopyStatus.ACCEPTED:
        return progress_of(record)  # confirmed meanwhile (another execution of the same request)
    record = copy_record.count_look(record)
    finding = _into_new(request, record) if record.new_image_set else _into_existing(request, record)
    if finding.verdict == "ours":
        try:
            record = copy_record.adopt(
                record,
                destination_image_set_id=str(finding.destination_image_set_id),
                destination_version_id=str(finding.destination_version_id),
            )
        except CopyRecordChanged as claimed:
            finding = Finding("undecided", str(claimed))
    age = clock.now() - record.requested_at
    context = {"verdict": finding.verdict, "reason": finding.reason, "looks": record.looks, "ageSeconds": int(age)}
    if record.status is CopyStatus.ACCEPTED:
        logger.info(
            "Unconfirmed copy proved ours", extra={**context, "destinationImageSetId": record.destination_image_set_id}
        )
        return progress_of(record)
    if finding.verdict == "not-accepted" and age >= SETTLE_SECONDS:
        logger.info("Unconfirmed copy landed nothing: starting it again", extra=context)
        copy_record.mark_not_accepted(record)
        return CopyProgress(status="NOT_ACCEPTED")
    settings = load_settings()
    if finding.verdict == "undecided" or age >= settings.max_wait_seconds:
        metrics.add_metric(name="UndecidedCopyOutcomes", unit=MetricUnit.Count, value=1)
        logger.error("Copy outcome cannot be decided", extra=context)
        raise CopyOutcomeUndecided(_operator_cause(request, record, finding))
    wait = min(settings.poll_initial_seconds * 2 ** (record.looks - 1), settings.poll_max_seconds)
    return CopyProgress(status="UNCONFIRMED", next_poll_seconds=wait, polls=record.looks)


def _operator_cause(request: CopyRequest, record: CopyRecord, finding: Finding) -> str:
    called = datetime.fromtimestamp(record.requested_at, tz=UTC).isoformat(timespec="seconds")
    where = (
        f"image sets created since {called} from the series of {request.source_image_set_id}"
        if record.new_image_set
        else f"versions after {record.baseline_version_id} of image set {request.destination_image_set_id}"
    )
    return (
        f"cannot tell whether CopyImageSet of {request.source_image_set_id} version {record.source_version_id}"
        f" called at {called} was accepted ({finding.reason}; {record.looks} looks). Check {where}"
        f" (ListImageSetVersions, SearchImageSets), then settle copy record {record.id}:"
        " `healthimaging-copy resolve --record-id ID --accepted-into IMAGE_SET_ID:VERSION` if one holds this copy,"
        " or `--not-accepted` if none does; then start the copy again (healthimaging-copy start)."
    )


def _source(request: CopyRequest, record: CopyRecord) -> tuple[MetadataSummary, dict[str, frozenset[str]]]:
    summary = healthimaging.get_metadata(
        request.datastore_id, request.source_image_set_id, record.source_version_id, instances=True
    )
    return summary, dicom.selection(summary, request.copiable_attributes)


def _held(
    request: CopyRequest, image_set_id: str, version_id: str, chosen: dict[str, frozenset[str]]
) -> MetadataSummary:
    """What an image set's version holds: its instances' UIDs, and the elements' digests of the chosen ones only
    (a large destination's others are read at the levels' pace)."""
    return healthimaging.get_metadata(
        request.datastore_id, image_set_id, version_id, instances=True, digests=dicom.chosen_instances(chosen)
    )


def _claimed_by_another(record: CopyRecord, image_set_id: str, version_id: str) -> bool:
    return any(claim.id != record.id for claim in copy_record.claims(image_set_id, version_id))


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
    status = str(produced.get("imageSetWorkflowStatus"))
    if status in IN_PROGRESS:
        return Finding("unsettled", f"version {expected} is {status}")
    if status != "COPIED" or _claimed_by_another(record, destination_id, expected):
        return Finding("not-accepted", f"version {expected} is {status}, and not ours: nothing of this copy landed")
    source, chosen = _source(request, record)
    # One destination summary at a time: the source's and one other are the most held at once.
    if dicom.holds_instances(_held(request, destination_id, baseline, chosen), source, chosen):
        return Finding("undecided", f"version {baseline} already held every copied instance")
    if not dicom.holds_instances(_held(request, destination_id, expected, chosen), source, chosen):
        return Finding("not-accepted", f"version {expected} was written by another copy")
    if bool(produced.get("overrides", {}).get("forced")) != record.forced:
        return Finding("undecided", f"version {expected} holds the copy but with another force setting")
    return Finding("ours", f"version {expected} holds the copied instances", destination_id, expected)


def _into_new(request: CopyRequest, record: CopyRecord) -> Finding:
    source, chosen = _source(request, record)
    if not chosen:
        return Finding("undecided", "the source holds no series to look for")
    since = datetime.fromtimestamp(record.requested_at - CLOCK_SKEW_SECONDS, tz=UTC)
    summaries = healthimaging.search(
        request.datastore_id,
        [
            healthimaging.equal("DICOMSeriesInstanceUID", min(chosen)),
            healthimaging.between("createdAt", since, datetime.fromtimestamp(clock.now() + 1, tz=UTC)),
        ],
    )
    matches: list[str] = []
    flag_differs: list[str] = []
    unsettled = False
    for summary in summaries:
        candidate = str(summary["imageSetId"])
        if candidate == request.source_image_set_id or _claimed_by_another(record, candidate, "1"):
            continue  # the source itself, or the output of another copy of ours
        first = healthimaging.get_image_set(request.datastore_id, candidate, "1")
        status = first.get("imageSetWorkflowStatus")
        if status in IN_PROGRESS:
            unsettled = True  # content cannot be read yet
            continue
        if status != "COPIED":
            continue  # an import, or a copy that failed: nothing landed there
        held = _held(request, candidate, "1", chosen)
        if (
            dicom.selection(held, None) == chosen
            and not dicom.inconsistent_elements(source, held, list(chosen))
            and dicom.holds_instances(held, source, chosen)
        ):
            same_flag = bool(first.get("overrides", {}).get("forced")) == record.forced
            (matches if same_flag else flag_differs).append(candidate)
    if len(matches) == 1 and not flag_differs:
        return Finding("ours", "one new image set holds exactly the copied instances", matches[0], "1")
    if matches or flag_differs:
        found = sorted(matches + flag_differs)
        return Finding("undecided", f"{len(found)} new image sets hold the copied instances: {', '.join(found)}")
    if unsettled:
        return Finding("unsettled", "a new image set of the series is still being written")
    source_now = healthimaging.get_image_set(request.datastore_id, request.source_image_set_id)
    if source_now.get("imageSetState") == "LOCKED":
        return Finding("unsettled", "the source is being copied from")
    return Finding("not-accepted", "no new image set of the series holds the copy")
