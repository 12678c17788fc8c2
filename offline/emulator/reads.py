"""The reads: GetImageSet and ListImageSetVersions (a version's record, newest first), GetImageSetMetadata (the
document as compact gzip JSON, written once per document), and SearchImageSets (at most 2 filters, as the API
model says, on DICOMSeriesInstanceUID (any series the image set holds), DICOMStudyInstanceUID, DICOMStudyId,
DICOMPatientId, DICOMAccessionNumber, isPrimary (EQUAL) and createdAt / updatedAt (BETWEEN); sorted as asked,
else oldest first; each image set's latest version summed up: `version`, DICOMTags, with the series-level tags
when it holds exactly one series; nextToken pages that may expire)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from offline import documents
from offline.emulator.errors import ServiceError
from offline.emulator.metadata import series_keys
from offline.emulator.store import ImageSet, ImageSetStore, ImageSetVersion

# SearchImageSets: which attributes each operator searches (timestamps arrive as epoch seconds).
EQUAL_SEARCH = (
    "DICOMPatientId",
    "DICOMAccessionNumber",
    "DICOMStudyId",
    "DICOMStudyInstanceUID",
    "DICOMSeriesInstanceUID",
    "isPrimary",
)
BETWEEN_SEARCH = ("createdAt", "updatedAt")
SORT_FIELDS = ("createdAt", "updatedAt", "DICOMStudyDateAndTime")
MAX_SEARCH_FILTERS = 2


@dataclass(frozen=True)
class SearchFilter:
    """One SearchImageSets filter, checked as the API model allows it."""

    name: str
    operator: str
    values: list[Any]

    @classmethod
    def parse(cls, criterion: dict[str, Any]) -> SearchFilter:
        values = criterion.get("values") or []
        if not values or any(len(value) != 1 for value in values):
            raise ServiceError("ValidationException", "each search value names exactly one attribute")
        names = {next(iter(value)) for value in values}
        name, operator = names.pop(), criterion.get("operator", "")
        if names:
            raise ServiceError("ValidationException", "the values of one search filter name one attribute")
        if (operator, len(values)) == ("EQUAL", 1) and name in EQUAL_SEARCH:
            return cls(name, operator, [values[0][name]])
        if (operator, len(values)) == ("BETWEEN", 2) and name in BETWEEN_SEARCH:
            return cls(name, operator, [value[name] for value in values])
        raise ServiceError("ValidationException", f"no search {name} {operator} with {len(values)} values")

    def matches(self, fields: dict[str, Any]) -> bool:
        actual = fields[self.name]
        if self.operator == "BETWEEN":
            return bool(self.values[0] <= actual <= self.values[1])
        if self.name == "DICOMSeriesInstanceUID":
            return self.values[0] in actual  # any series the image set holds
        return bool(actual == self.values[0])


class Reads(ImageSetStore):
    """GetImageSet, GetImageSetMetadata, ListImageSetVersions, SearchImageSets."""

    # SearchImageSets' nextToken expires; AWS does not say when. Older tokens are refused (ValidationException).
    search_token_max_age_seconds: float | None
    # image set id -> (what its fields were read from, the fields): SearchImageSets reads every image set.
    _search_fields: dict[str, tuple[tuple[Any, ...], dict[str, Any]]]
    # id(document) -> (the document, its GetImageSetMetadata body); holding the document keeps its id its own.
    _bodies: dict[int, tuple[dict[str, Any], bytes]]

    def _op_GetImageSet(self, datastoreId: str, imageSetId: str, versionId: str | None = None) -> dict[str, Any]:
        image_set = self._image_set(datastoreId, imageSetId, allow_deleted=True)
        version = image_set.latest if versionId is None else image_set.version(versionId)
        return self._properties(image_set, version, get=True)

    def _op_GetImageSetMetadata(self, datastoreId: str, imageSetId: str, versionId: str | None = None) -> bytes:
        image_set = self._image_set(datastoreId, imageSetId)
        version = image_set.latest if versionId is None else image_set.version(versionId)
        return self._body(version.metadata)

    def _body(self, document: dict[str, Any]) -> bytes:
        """The gzip body of a document, written once: documents are never changed in place, and a large
        one takes seconds to write (confirmation reads a version up to three times)."""
        kept = self._bodies.get(id(document))
        if kept is None or kept[0] is not document:
            kept = (document, documents.gzip_body(document))
            self._bodies[id(document)] = kept
        return kept[1]

    def _op_ListImageSetVersions(
        self, datastoreId: str, imageSetId: str, maxResults: int | None = None, nextToken: str | None = None
    ) -> dict[str, Any]:
        image_set = self._image_set(datastoreId, imageSetId, allow_deleted=True)
        versions = [self._properties(image_set, v, get=False) for v in reversed(image_set.versions)]
        return _page("imageSetPropertiesList", versions, maxResults, nextToken)

    def _op_SearchImageSets(
        self,
        datastoreId: str,
        searchCriteria: dict[str, Any] | None = None,
        maxResults: int | None = None,
        nextToken: str | None = None,
    ) -> dict[str, Any]:
        self._datastore(datastoreId)
        criteria = searchCriteria or {}
        filters = [SearchFilter.parse(criterion) for criterion in criteria.get("filters", [])]
        if len(filters) > MAX_SEARCH_FILTERS:  # the API model's limit, which botocore does not check
            raise ServiceError("ValidationException", f"at most {MAX_SEARCH_FILTERS} search filters")
        sort = criteria.get("sort")
        field_name, order = (sort["sortField"], sort["sortOrder"]) if sort else ("createdAt", "ASC")
        if field_name not in SORT_FIELDS or order not in ("ASC", "DESC"):
            raise ServiceError("ValidationException", f"cannot sort by {field_name} {order}")
        # Each image set's fields once, and only the page's summaries: a backfill pages through 10,000s.
        candidates = (
            (image_set, self._searchable_fields(image_set))
            for (ds, _), image_set in self.image_sets.items()
            if ds == datastoreId and image_set.deleted_at is None
        )
        found = [(image_set, fields) for image_set, fields in candidates if all(f.matches(fields) for f in filters)]
        found.sort(key=lambda pair: pair[1][field_name], reverse=order == "DESC")
        answer = _page(
            "imageSetsMetadataSummaries",
            [image_set for image_set, _ in found],
            maxResults,
            self._search_offset(nextToken),
            self._summary,
        )
        if "nextToken" in answer:  # opaque to the caller: the offset and when the token was issued
            answer["nextToken"] = f"{answer['nextToken']}@{self.clock():.3f}"
        if sort:
            answer["sort"] = sort
        return answer

    def _search_offset(self, token: str | None) -> str | None:
        if token is None:
            return None
        offset, _, issued = token.partition("@")
        if not offset.isdigit() or not issued.replace(".", "", 1).isdigit():
            raise ServiceError("ValidationException", "nextToken is not valid")
        age = self.clock() - float(issued)
        if self.search_token_max_age_seconds is not None and age > self.search_token_max_age_seconds:
            raise ServiceError("ValidationException", "nextToken has expired")
        return offset

    def _searchable_fields(self, image_set: ImageSet) -> dict[str, Any]:
        """searchable_fields, read again only when the latest version changed (a version's document is
        replaced, never changed in place): a backfill's every page searches the whole data store."""
        latest = image_set.latest
        source = (latest.metadata, latest.version_id, latest.updated_at, image_set.is_primary, image_set.created_at)
        cached = self._search_fields.get(image_set.image_set_id)
        if cached is None or cached[0][0] is not latest.metadata or cached[0][1:] != source[1:]:
            cached = (source, searchable_fields(image_set))
            self._search_fields[image_set.image_set_id] = cached
        return cached[1]

    def _properties(self, image_set: ImageSet, version: ImageSetVersion, *, get: bool) -> dict[str, Any]:
        """One version's record as GetImageSet (get) or ListImageSetVersions spells it."""
        answer: dict[str, Any] = {
            "imageSetId": image_set.image_set_id,
            "versionId": str(version.version_id),
            "imageSetState": version.state,
            "createdAt": image_set.created_at,
            "updatedAt": version.updated_at,
            "isPrimary": image_set.is_primary,
        }
        answer["imageSetWorkflowStatus" if get else "ImageSetWorkflowStatus"] = version.workflow
        if version.message:
            answer["message"] = version.message
        if version.forced:
            answer["overrides"] = {"forced": True}
        if image_set.deleted_at is not None and version.state == "DELETED":
            answer["deletedAt"] = image_set.deleted_at
        if get:
            answer["datastoreId"] = image_set.datastore_id
            answer["imageSetArn"] = self._arn(image_set)
        return answer

    def _summary(self, image_set: ImageSet) -> dict[str, Any]:
        """The image set's latest version as SearchImageSets sums it up."""
        patient = image_set.metadata.get("Patient", {}).get("DICOM", {})
        study = image_set.metadata.get("Study", {}).get("DICOM", {})
        series = image_set.metadata.get("Study", {}).get("Series", {})
        tags = {
            "DICOMPatientId": patient.get("PatientID"),
            "DICOMPatientName": patient.get("PatientName"),
            "DICOMPatientBirthDate": patient.get("PatientBirthDate"),
            "DICOMPatientSex": patient.get("PatientSex"),
            "DICOMStudyInstanceUID": study.get("StudyInstanceUID"),
            "DICOMStudyId": study.get("StudyID"),
            "DICOMStudyDescription": study.get("StudyDescription"),
            "DICOMAccessionNumber": study.get("AccessionNumber"),
            "DICOMStudyDate": study.get("StudyDate"),
            "DICOMStudyTime": study.get("StudyTime"),
            "DICOMNumberOfStudyRelatedSeries": len(series),
            "DICOMNumberOfStudyRelatedInstances": sum(len(s.get("Instances", {})) for s in series.values()),
        }
        if len(series) == 1:  # series-level tags describe an image set of one series only
            only = next(iter(series.values())).get("DICOM", {})
            tags |= {
                "DICOMSeriesInstanceUID": only.get("SeriesInstanceUID"),
                "DICOMSeriesModality": only.get("Modality"),
                "DICOMSeriesBodyPart": only.get("BodyPartExamined"),
                "DICOMSeriesNumber": only.get("SeriesNumber"),
            }
        return {
            "imageSetId": image_set.image_set_id,
            "version": image_set.version_id,
            "createdAt": image_set.created_at,
            "updatedAt": image_set.latest.updated_at,
            "isPrimary": image_set.is_primary,
            "DICOMTags": {k: v for k, v in tags.items() if v is not None},
        }


def _page(
    key: str,
    items: list[Any],
    max_results: int | None,
    token: str | None,
    render: Callable[[Any], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One page of a listing (`render` turns the page's items into their wire shape); the token is the
    offset of the next page."""
    start, size = int(token or 0), max_results or 50
    page = items[start : start + size]
    answer: dict[str, Any] = {key: [render(item) for item in page] if render else page}
    if start + size < len(items):
        answer["nextToken"] = str(start + size)
    return answer


def searchable_fields(image_set: ImageSet) -> dict[str, Any]:
    """What SearchImageSets filters and sorts the image set's latest version by."""
    patient = image_set.metadata.get("Patient", {}).get("DICOM", {})
    study = image_set.metadata.get("Study", {}).get("DICOM", {})
    return {
        "DICOMPatientId": patient.get("PatientID"),
        "DICOMAccessionNumber": study.get("AccessionNumber"),
        "DICOMStudyId": study.get("StudyID"),
        "DICOMStudyInstanceUID": study.get("StudyInstanceUID"),
        "DICOMSeriesInstanceUID": {series_uid for _, series_uid in series_keys(image_set.metadata)},
        "DICOMStudyDateAndTime": study.get("StudyDate", "") + study.get("StudyTime", ""),
        "isPrimary": image_set.is_primary,
        "createdAt": image_set.created_at,
        "updatedAt": image_set.latest.updated_at,
    }
