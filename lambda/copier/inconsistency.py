"""Is a refused or failed copy about inconsistent metadata? Decided from the two metadata
documents' Patient, Study and Series levels (their summaries: metadata.py), never from the wording
of the service's message (which is not a documented format)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from copier import dicom, healthimaging
from copier.errors import CopyConflict, CopyError, CopyFailed, InconsistentMetadata
from copier.metadata import MetadataSummary
from copier.models import CopyProgress, CopyRequest

logger = Logger(child=True)


Summaries = tuple[MetadataSummary, MetadataSummary]


def summaries(request: CopyRequest, *, source_version_id: str | None, destination_version_id: str | None) -> Summaries:
    """The source's and the destination's metadata at these versions (None: the latest), without
    their instances: neither inconsistency nor the force policy looks below the Series level."""
    source = healthimaging.get_metadata(
        request.datastore_id, request.source_image_set_id, source_version_id, instances=False
    )
    destination = healthimaging.get_metadata(
        request.datastore_id, str(request.destination_image_set_id), destination_version_id, instances=False
    )
    return source, destination


def differing_elements(request: CopyRequest, pair: Summaries) -> list[str]:
    """Element names that differ between what the copy takes from its source and the destination."""
    source, destination = pair
    return dicom.inconsistent_elements(source, destination, dicom.copied_series(source, request.copiable_attributes))


def _differing_at(request: CopyRequest, *, source_version_id: str, destination_version_id: str) -> list[str]:
    pair = summaries(request, source_version_id=source_version_id, destination_version_id=destination_version_id)
    return differing_elements(request, pair)


def _inconsistent(subject: str, names: list[str]) -> InconsistentMetadata:
    logger.warning("Inconsistent metadata", extra={"elements": names})
    return InconsistentMetadata(f"{subject}: source and destination differ in {', '.join(names)}")


def judge_refusal(
    request: CopyRequest, refusal: CopyError, *, source_version_id: str, baseline_version_id: str
) -> CopyError:
    """A ConflictException or ValidationException on an unforced copy into an existing image set:
    the refusal as it was, unless the image sets are settled and their metadata differ."""
    if request.force:
        return refusal  # force overrides inconsistency: it cannot be why a forced copy was refused
    if isinstance(refusal, CopyConflict):
        for image_set_id, version in (
            (request.source_image_set_id, source_version_id),
            (request.destination_image_set_id, baseline_version_id),
        ):
            current = healthimaging.get_image_set(request.datastore_id, str(image_set_id))
            if current.get("imageSetState") == "LOCKED" or str(current.get("versionId")) != version:
                return refusal  # a lock or a moved version: a real conflict, retried
    names = _differing_at(request, source_version_id=source_version_id, destination_version_id=baseline_version_id)
    return _inconsistent(str(refusal), names) if names else refusal


def judge_failure(request: CopyRequest, progress: CopyProgress) -> CopyError:
    """Our own version ended COPY_FAILED: inconsistent metadata (an unforced copy between documents that
    differ cannot succeed: force may help) or CopyFailed."""
    subject = f"COPY_FAILED on {progress.destination_image_set_id} version {progress.destination_version_id}"
    if not request.force and progress.baseline_version_id is not None and progress.source_version_id is not None:
        names = _differing_at(
            request, source_version_id=progress.source_version_id, destination_version_id=progress.baseline_version_id
        )
        if names:
            return _inconsistent(subject, names)
    return CopyFailed(subject)
