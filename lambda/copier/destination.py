"""merge-into-primary: find the primary image set of the source's study to copy into."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from copier import healthimaging
from copier.errors import InvalidCopyRequest, PrimaryImageSetNotFound
from copier.models import CopyPlan, CopyRequest

logger = Logger(child=True)


def resolve_primary_destination(request: CopyRequest) -> CopyPlan:
    """The plan with the destination filled in, or a skip when the source is primary."""
    source = healthimaging.get_image_set(request.datastore_id, request.source_image_set_id, request.source_version_id)
    if source.get("isPrimary"):
        return CopyPlan(skip=True, reason="source image set is primary: nothing to merge", trigger="event")
    metadata = healthimaging.get_metadata(request.datastore_id, request.source_image_set_id, source.get("versionId"))
    study_uid = metadata.get("Study", {}).get("DICOM", {}).get("StudyInstanceUID")
    if not isinstance(study_uid, str) or not study_uid:
        raise InvalidCopyRequest(f"image set {request.source_image_set_id} has no StudyInstanceUID")
    candidates = [
        summary
        for summary in healthimaging.search_study(request.datastore_id, study_uid)
        if summary.get("isPrimary") and summary["imageSetId"] != request.source_image_set_id
    ]
    if not candidates:
        raise PrimaryImageSetNotFound(f"no primary image set shares the study of {request.source_image_set_id}")
    primary = min(candidates, key=lambda summary: (str(summary.get("createdAt", "")), summary["imageSetId"]))
    logger.info(
        "Primary destination resolved",
        extra={
            "sourceImageSetId": request.source_image_set_id,
            "destinationImageSetId": primary["imageSetId"],
            "candidates": len(candidates),
        },
    )
    resolved = request.model_copy(
        update={"destination_image_set_id": primary["imageSetId"], "source_version_id": source["versionId"]}
    )
    return CopyPlan(request=resolved, trigger="event")
