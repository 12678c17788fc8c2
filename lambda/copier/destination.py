"""merge-into-primary: find the primary image set of the source's series to copy into.

Image sets resemble a DICOM Series (AWS guide, "Understanding image sets"): a study with N
series has N primary image sets, and an import that conflicts with one is kept beside it as
non-primary. The destination is the one primary image set of the same Study AND Series.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from copier import dicom, healthimaging
from copier.errors import InvalidCopyRequest, PrimaryImageSetNotFound, SeveralPrimaryImageSets
from copier.models import CopyPlan, CopyRequest

logger = Logger(child=True)


def find_primary_of_series(request: CopyRequest) -> CopyPlan:
    """The plan with the destination filled in, or a skip when the source is primary."""
    source = healthimaging.get_image_set(request.datastore_id, request.source_image_set_id, request.source_version_id)
    if source.get("isPrimary"):
        return CopyPlan(skip=True, reason="source image set is primary: nothing to merge")
    version = str(source["versionId"])
    metadata = healthimaging.get_metadata(request.datastore_id, request.source_image_set_id, version, instances=False)
    study_uid, series = dicom.study_uid(metadata), dicom.series_uids(metadata)
    if study_uid is None or len(series) != 1:
        raise InvalidCopyRequest(
            f"image set {request.source_image_set_id} holds {len(series)} series"
            + ("" if study_uid else " and no StudyInstanceUID")
            + ": merge-into-primary needs exactly one series and its study"
        )
    primaries = [
        summary["imageSetId"]
        for summary in healthimaging.search(
            request.datastore_id,
            [healthimaging.equal("DICOMSeriesInstanceUID", series[0]), healthimaging.equal("isPrimary", True)],
        )
        if summary.get("isPrimary")
        and summary["imageSetId"] != request.source_image_set_id
        and summary.get("DICOMTags", {}).get("DICOMStudyInstanceUID", study_uid) == study_uid
    ]
    if not primaries:
        raise PrimaryImageSetNotFound(f"no primary image set holds the series of {request.source_image_set_id}")
    if len(primaries) > 1:
        raise SeveralPrimaryImageSets(
            f"{len(primaries)} primary image sets hold the series of {request.source_image_set_id}:"
            f" {', '.join(sorted(primaries))}"
        )
    logger.info(
        "Primary of the series found",
        extra={"sourceImageSetId": request.source_image_set_id, "destinationImageSetId": primaries[0]},
    )
    resolved = request.model_copy(update={"destination_image_set_id": primaries[0], "source_version_id": version})
    return CopyPlan(request=resolved)
