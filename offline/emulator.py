"""A local AWS HealthImaging for the operations the pipeline uses.

Semantics follow the service as the design documents it:
- Versions. Every version of an image set keeps its own record (state, workflow status,
  message, forced flag, updatedAt) and its own metadata document; GetImageSet and
  GetImageSetMetadata with `versionId` answer that version, ListImageSetVersions lists
  them all, newest first.
- Copies are asynchronous. CopyImageSet creates the version it produces at once, LOCKED /
  COPYING (version N+1 of an existing destination, version 1 of a new one), and the
  answer's destination latestVersionId names it. The source's latest version is LOCKED /
  COPYING_WITH_READ_ONLY_ACCESS meanwhile, then ACTIVE again with its own workflow
  status (no source version is added). When the clock passes `copy_seconds` the produced
  version becomes ACTIVE / COPIED with the merged document, or ACTIVE / COPY_FAILED with
  a `message`, keeping the content it started with (the previous version's, or nothing
  for a new image set).
- Image sets resemble DICOM series. An imported (seeded) image set is primary unless a
  primary image set of one of its Study+Series exists, then it is kept non-primary; at
  most one primary per series. promoteToPrimary makes the destination primary when the
  copy lands, or ends it COPY_FAILED if another primary holds one of its series.
- SearchImageSets filters (at most 2, as the API model says) on DICOMSeriesInstanceUID
  (any series the image set holds), DICOMStudyInstanceUID, DICOMStudyId, DICOMPatientId,
  DICOMAccessionNumber, isPrimary (EQUAL) and createdAt / updatedAt (BETWEEN), sorts as
  asked (else oldest first), and sums up each image set's latest version: `version`,
  DICOMTags, with the series-level tags when it holds exactly one series.
- ConflictException on a locked image set or a stale latestVersionId; inconsistent
  Patient/Study/Series metadata fails without force (at once, or later as COPY_FAILED
  with a message) and succeeds with it, the destination keeping its own values; subset
  copies by copiableAttributes; a CopyImageSet token bucket (0.25 TPS, burst 1)
  answering ThrottlingException; 100 concurrent copies per data store.
- Documents are kept as `offline.documents` says (levels parsed, each instance as its JSON
  text: image sets of realistic size, up to the 50 MB limit, cost about their JSON's size);
  GetImageSetMetadata answers the document as compact gzip JSON, written once per document.

Time and other writers: the emulator settles lazily. Each call first runs, in time
order and each at its own time, everything the clock has passed: copies and updates
landing, and other writers' actions (`schedule_copy`, `schedule_metadata_update`) issued
at the time they were scheduled for. At one instant what completes goes before what
starts, and an action scheduled for the current instant runs before the next call.
Another writer's copy follows the same rules as the pipeline's (locks, versions,
inconsistency, the concurrency quota) but takes no token from the CopyImageSet bucket,
which stands for the pipeline's own rate. A metadata update makes a version LOCKED /
UPDATING for `update_seconds`, then ACTIVE / UPDATED. `accepted` records every copy the
service took on and who asked (`by`: "pipeline" for calls through `call()`);
`accepted_copies`, `instances` and `forced` are what tests read.

Events. A copy that lands (COPIED or COPY_FAILED) is announced as HealthImaging announces it to
EventBridge: an "Image Set Copied" / "Image Set Copy Failed" event about the destination image set,
detail `imagingVersion`, `datastoreId`, `imageSetId`, `imageSetState`, `imageSetWorkflowStatus` and no
version (the service's event schema), `time` the landing's second. Listeners (`event_listeners`) get
each one when the emulator settles; `timeline_listeners` are told when something will happen at a
time, so a driver can settle the emulator then (`settle()`) rather than at the next call.

Operations take and return the wire shapes (camelCase dicts, parameters under the
botocore model's member names); `offline.wire` puts them behind HTTP so a real boto3
client talks to this.
"""

from __future__ import annotations

import copy as copying
import datetime
import heapq
import itertools
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, Literal

from offline import documents

ID = re.compile(r"^[0-9a-z]{32}$")
VERSION = re.compile(r"^\d+$")
MESSAGE = re.compile(r"[\w -:`]{1,2048}")  # the API model's Message shape
PATIENT_AND_STUDY_LEVELS = ("Patient", "Study")
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
PRIMARY_EXISTS = "A primary image set of this series exists already. Copy into it or without promoteToPrimary"
InconsistencyMode = Literal["immediate", "deferred"]
CopyOutcome = Literal["COPIED", "COPY_FAILED"]
PIPELINE = "pipeline"  # who asked, for every copy asked through call()
OTHER_WRITER = "other-writer"  # who asked, by default, for scheduled writes


class NoAnswer(Exception):
    """The request was processed but no answer goes back (a read timeout for the client)."""


class ServiceError(Exception):
    """An error answer: code (the x-amzn-ErrorType) and HTTP status."""

    STATUS: ClassVar[dict[str, int]] = {
        "AccessDeniedException": 403,
        "ConflictException": 409,
        "InternalServerException": 500,
        "ResourceNotFoundException": 404,
        "ServiceQuotaExceededException": 402,
        "ThrottlingException": 429,
        "ValidationException": 400,
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = self.STATUS[code]
        self.message = message


@dataclass
class ImageSetVersion:
    """One version's own record: what GetImageSet and GetImageSetMetadata with its versionId show."""

    version_id: int
    state: str
    workflow: str
    updated_at: float
    # Never changed in place (versions share documents); out of repr so no failing assertion prints it.
    metadata: dict[str, Any] = field(repr=False)
    message: str | None = None
    forced: bool = False


@dataclass
class ImageSet:
    image_set_id: str
    datastore_id: str
    created_at: float
    is_primary: bool
    versions: list[ImageSetVersion]  # oldest first: version n is versions[n - 1]
    deleted_at: float | None = None

    @property
    def latest(self) -> ImageSetVersion:
        return self.versions[-1]

    # The latest version's record: what the image set shows without a versionId.
    @property
    def version_id(self) -> int:
        return self.latest.version_id

    @property
    def state(self) -> str:
        return self.latest.state

    @property
    def workflow(self) -> str:
        return self.latest.workflow

    @property
    def forced(self) -> bool:
        return self.latest.forced

    @property
    def metadata(self) -> dict[str, Any]:
        return self.latest.metadata

    def version(self, version_id: str) -> ImageSetVersion:
        if not VERSION.match(version_id):
            raise ServiceError("ValidationException", "versionId must match \\d+")
        number = int(version_id)
        if not 1 <= number <= len(self.versions):
            raise ServiceError("ResourceNotFoundException", f"version {version_id} of {self.image_set_id} not found")
        return self.versions[number - 1]

    def add_version(self, state: str, workflow: str, at: float) -> ImageSetVersion:
        """The next version, holding the latest content until its operation lands."""
        version = ImageSetVersion(self.version_id + 1, state, workflow, at, self.metadata)
        self.versions.append(version)
        return version


@dataclass
class AcceptedCopy:
    """A copy the service took on, answered or not."""

    datastore_id: str
    source_id: str
    source_version_id: int
    source_workflow: str  # the source record's workflow status before the copy, back when it lands
    destination_id: str
    destination_version_id: int  # the version this copy produces
    new_destination: bool
    by: str  # PIPELINE, or the other writer that issued it
    accepted_at: float
    completes_at: float
    metadata: dict[str, Any] = field(repr=False)  # what the produced version holds if the copy succeeds
    inconsistent: list[str]  # element names that make it fail (deferred mode, no force)
    failure: str | None  # an injected COPY_FAILED message
    force: bool
    promote: bool
    outcome: CopyOutcome | None = None  # once landed; stays None if the destination was deleted meanwhile


@dataclass
class ScheduledCopy:
    """Another writer's CopyImageSet, issued when the clock reaches `at` with the versions latest then."""

    at: float
    datastore_id: str
    source_id: str
    destination_id: str | None  # None: into a new image set
    failure: str | None  # the COPY_FAILED message it is to end with, if it is to fail
    force: bool
    by: str
    accepted: AcceptedCopy | None = None  # once issued, if the service took it on
    refusal: ServiceError | None = None  # once issued, if the service refused it


@dataclass
class ScheduledUpdate:
    """Another writer's UpdateImageSetMetadata, issued when the clock reaches `at` on the latest version."""

    at: float
    datastore_id: str
    image_set_id: str
    updatable_attributes: dict[str, Any]  # {"Patient": {"DICOM": {...}}, "Study": {"DICOM": {...}}}
    by: str
    version_id: int | None = None  # once issued, the version it produces
    refusal: ServiceError | None = None  # once issued, if the service refused it


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


@dataclass(order=True)
class _Event:
    """Something the clock brings about, run when a call finds the clock past `at`."""

    at: float
    rank: int  # at one instant, what completes (LANDING) goes before what starts (WRITE)
    sequence: int  # then in the order they were scheduled
    run: Callable[[float], None] = field(compare=False)


LANDING, WRITE = 0, 1


@dataclass
class FaultPlan:
    """Faults injected on the next CopyImageSet calls (tests and the fault suite)."""

    # "error:<Code>" answers that error without copying; "accept-then-500" copies but
    # answers InternalServerException (the ambiguous case); "fail-later:<message>" accepts
    # the copy and ends it COPY_FAILED with that message; "accept-then-timeout" copies but
    # never answers.
    copy_faults: list[str] = field(default_factory=list)


class HealthImagingEmulator:
    def __init__(
        self,
        *,
        clock: Callable[[], float],
        account: str = "123456789012",
        region: str = "us-east-1",
        copy_seconds: float = 45.0,
        update_seconds: float = 5.0,
        copy_rate_per_second: float = 0.25,
        copy_burst: float = 1.0,
        max_concurrent_copies: int = 100,
        inconsistency_mode: InconsistencyMode = "deferred",
        search_token_max_age_seconds: float | None = None,
    ) -> None:
        self.clock = clock
        self.account = account
        self.region = region
        self.copy_seconds = copy_seconds
        self.update_seconds = update_seconds
        self.copy_rate_per_second = copy_rate_per_second
        self.copy_burst = copy_burst
        self.max_concurrent_copies = max_concurrent_copies
        self.inconsistency_mode: InconsistencyMode = inconsistency_mode
        # SearchImageSets' nextToken expires; AWS does not say when. Older tokens are refused (ValidationException).
        self.search_token_max_age_seconds = search_token_max_age_seconds
        self.faults = FaultPlan()
        self.datastores: set[str] = set()
        self.image_sets: dict[tuple[str, str], ImageSet] = {}
        self.pending: list[AcceptedCopy] = []  # copies under way, for the concurrency quota
        self.calls: list[tuple[str, int]] = []  # (operation, HTTP status) of every call
        self.accepted: list[AcceptedCopy] = []  # every copy the service took on, answered or not, by anyone
        self._timeline: list[_Event] = []  # a heap
        self._sequence = itertools.count()
        self._tokens = copy_burst
        self._tokens_at = clock()
        self._lock = threading.RLock()
        # image set id -> (what its fields were read from, the fields): SearchImageSets reads every image set.
        self._search_fields: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        self.event_listeners: list[Callable[[dict[str, Any]], None]] = []  # copy outcome events, as they happen
        self.timeline_listeners: list[Callable[[float], None]] = []  # told each time something is scheduled
        # id(document) -> (the document, its GetImageSetMetadata body); holding the document keeps its id its own.
        self._bodies: dict[int, tuple[dict[str, Any], bytes]] = {}

    # --- seeding ---------------------------------------------------------------------
    def create_datastore(self, datastore_id: str | None = None) -> str:
        datastore_id = datastore_id or secrets.token_hex(16)
        self.datastores.add(datastore_id)
        return datastore_id

    def seed_image_set(
        self,
        datastore_id: str,
        metadata: dict[str, Any],
        *,
        is_primary: bool | None = None,
        image_set_id: str | None = None,
    ) -> str:
        """An imported image set. As an import does, it is primary unless a primary image set of
        one of its Study+Series exists (None), then it is kept as non-primary; True insists
        (ValueError if that primary exists), False makes it non-primary anyway."""
        with self._lock:
            self._settle()
            image_set_id = image_set_id or secrets.token_hex(16)
            now = self.clock()
            document = documents.stored(metadata)
            document.update({"SchemaVersion": "1.1", "DatastoreID": datastore_id, "ImageSetID": image_set_id})
            primaries = self._primaries_holding(datastore_id, series_keys(document))
            if is_primary and primaries:
                raise ValueError(f"image set {primaries[0].image_set_id} is already primary for that series")
            if is_primary is None:
                is_primary = not primaries
            first = ImageSetVersion(1, "ACTIVE", "CREATED", now, document)
            self.image_sets[(datastore_id, image_set_id)] = ImageSet(
                image_set_id, datastore_id, now, is_primary, [first]
            )
            return image_set_id

    def delete_image_set(self, datastore_id: str, image_set_id: str) -> None:
        """The whole image set goes: its latest record shows DELETED; no version is added."""
        with self._lock:
            self._settle()  # what landed before now landed before the deletion
            image_set = self._image_set(datastore_id, image_set_id)
            image_set.deleted_at = self.clock()
            latest = image_set.latest
            latest.state, latest.workflow, latest.updated_at = "DELETED", "DELETED", image_set.deleted_at

    # --- other writers -------------------------------------------------------------------
    def schedule_copy(
        self,
        at: float,
        source_id: str,
        destination_id: str | None = None,
        *,
        outcome: CopyOutcome = "COPIED",
        message: str | None = None,
        force: bool = False,
        by: str = OTHER_WRITER,
    ) -> ScheduledCopy:
        """Another writer's CopyImageSet at `at`, under the pipeline's rules but outside its token bucket.

        It names the latest versions of that moment and is refused (see `refusal`) or accepted
        (see `accepted`) like any copy: locks, versions, inconsistency, the concurrency quota.
        outcome="COPY_FAILED" makes an accepted copy end COPY_FAILED with `message`.
        """
        if outcome == "COPIED" and message is not None:
            raise ValueError("a message goes with outcome COPY_FAILED only")
        failure = checked_message(message or "Image set copy failed") if outcome == "COPY_FAILED" else None
        with self._lock:
            datastore_id = self._future_write(at, by, source_id, destination_id)
            scheduled = ScheduledCopy(at, datastore_id, source_id, destination_id, failure, force, by)
            self._schedule(at, WRITE, partial(self._issue_copy, scheduled))
            return scheduled

    def schedule_metadata_update(
        self,
        at: float,
        image_set_id: str,
        *,
        updatable_attributes: dict[str, Any] | None = None,
        by: str = OTHER_WRITER,
    ) -> ScheduledUpdate:
        """Another writer's UpdateImageSetMetadata at `at`: a new version, LOCKED / UPDATING for
        `update_seconds`, then ACTIVE / UPDATED holding the Patient / Study level elements of
        `updatable_attributes` (none: the same content). Refused (ConflictException) if locked then."""
        with self._lock:
            datastore_id = self._future_write(at, by, image_set_id)
            scheduled = ScheduledUpdate(at, datastore_id, image_set_id, updatable_attributes or {}, by)
            self._schedule(at, WRITE, partial(self._issue_update, scheduled))
            return scheduled

    def _future_write(self, at: float, by: str, *image_set_ids: str | None) -> str:
        """The data store of a write to schedule, checked now so mistakes show where they are made."""
        if at < self.clock():
            raise ValueError(f"{at} is in the past (the clock says {self.clock()})")
        if by == PIPELINE:
            raise ValueError(f"{PIPELINE!r} names copies asked through call(): name the other writer")
        datastores = {self._find(i).datastore_id for i in image_set_ids if i is not None}
        if len(datastores) != 1:
            raise ValueError("the image sets of one write are in one data store")
        return datastores.pop()

    def _issue_copy(self, scheduled: ScheduledCopy, at: float) -> None:
        source = self.image_sets[(scheduled.datastore_id, scheduled.source_id)]
        information: dict[str, Any] = {"sourceImageSet": {"latestVersionId": str(source.version_id)}}
        if scheduled.destination_id is not None:
            destination = self.image_sets[(scheduled.datastore_id, scheduled.destination_id)]
            information["destinationImageSet"] = {
                "imageSetId": scheduled.destination_id,
                "latestVersionId": str(destination.version_id),
            }
        try:
            scheduled.accepted = self._start_copy(
                scheduled.datastore_id,
                scheduled.source_id,
                information,
                force=scheduled.force,
                promote=False,
                failure=scheduled.failure,
                by=scheduled.by,
                now=at,
            )
        except ServiceError as refusal:
            scheduled.refusal = refusal

    def _issue_update(self, scheduled: ScheduledUpdate, at: float) -> None:
        try:
            image_set = self._image_set(scheduled.datastore_id, scheduled.image_set_id)
            if image_set.state == "LOCKED":
                raise ServiceError("ConflictException", f"image set {scheduled.image_set_id} is locked")
        except ServiceError as refusal:
            scheduled.refusal = refusal
            return
        updated = updated_metadata(image_set.metadata, scheduled.updatable_attributes)
        produced = image_set.add_version("LOCKED", "UPDATING", at)
        scheduled.version_id = produced.version_id
        self._schedule(at + self.update_seconds, LANDING, partial(self._land_update, image_set, produced, updated))

    @staticmethod
    def _land_update(image_set: ImageSet, produced: ImageSetVersion, updated: dict[str, Any], at: float) -> None:
        if image_set.deleted_at is None:
            produced.state, produced.workflow, produced.updated_at, produced.metadata = "ACTIVE", "UPDATED", at, updated

    # --- what tests look at -----------------------------------------------------------
    def copy_image_set_calls(self) -> list[int]:
        """HTTP statuses of every CopyImageSet call, in order."""
        return [status for operation, status in self.calls if operation == "CopyImageSet"]

    def accepted_copies(self, source_id: str, by: str | None = PIPELINE) -> list[AcceptedCopy]:
        """Copies of this source the service accepted from `by` (None: from anyone), oldest first."""
        with self._lock:
            self._settle()
            return [c for c in self.accepted if c.source_id == source_id and by in (None, c.by)]

    def instances(self, image_set_id: str, version_id: int | str | None = None) -> set[str]:
        """SOPInstanceUIDs the image set holds at that version (the latest by default)."""
        series = self._version_record(image_set_id, version_id).metadata.get("Study", {}).get("Series", {})
        return {sop for one in series.values() for sop in one.get("Instances", {})}

    def forced(self, image_set_id: str, version_id: int | str | None = None) -> bool:
        """Whether that version (the latest by default) was produced by a forced copy."""
        return self._version_record(image_set_id, version_id).forced

    def _version_record(self, image_set_id: str, version_id: int | str | None) -> ImageSetVersion:
        with self._lock:
            self._settle()
            image_set = self._find(image_set_id)
            return image_set.latest if version_id is None else image_set.version(str(version_id))

    # --- operations ------------------------------------------------------------------
    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any] | bytes:
        with self._lock:
            self._settle()
            try:
                result = getattr(self, f"_op_{operation}")(**params)
            except ServiceError as error:
                self.calls.append((operation, error.status))
                raise
            except NoAnswer:
                self.calls.append((operation, 0))
                raise
            self.calls.append((operation, 200))
            return result

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

    def _op_CopyImageSet(
        self,
        datastoreId: str,
        sourceImageSetId: str,
        copyImageSetInformation: dict[str, Any],
        force: bool = False,
        promoteToPrimary: bool = False,
    ) -> dict[str, Any]:
        fault = self.faults.copy_faults.pop(0) if self.faults.copy_faults else None
        if fault and fault.startswith("error:"):  # refused up front: no quota token spent
            code = fault.removeprefix("error:")
            raise ServiceError(code, f"injected {code}")
        self._take_copy_token()
        accepted = self._start_copy(
            datastoreId,
            sourceImageSetId,
            copyImageSetInformation,
            force=force,
            promote=promoteToPrimary,
            failure=fault.removeprefix("fail-later:") if fault and fault.startswith("fail-later:") else None,
            by=PIPELINE,
            now=self.clock(),
        )
        source = self.image_sets[(datastoreId, sourceImageSetId)]
        destination = self.image_sets[(datastoreId, accepted.destination_id)]
        answer = {
            "datastoreId": datastoreId,
            "sourceImageSetProperties": self._copy_properties(source, source.latest),
            "destinationImageSetProperties": self._copy_properties(destination, destination.latest),
        }
        if fault == "accept-then-500":
            raise ServiceError("InternalServerException", "injected failure after the copy was accepted")
        if fault == "accept-then-timeout":
            raise NoAnswer()
        return answer

    def _start_copy(
        self,
        datastore_id: str,
        source_id: str,
        information: dict[str, Any],
        *,
        force: bool,
        promote: bool,
        failure: str | None,
        by: str,
        now: float,
    ) -> AcceptedCopy:
        """Check a CopyImageSet request at `now` and, if the service takes it on, lock and version."""
        if failure is not None:
            checked_message(failure)
        for name, value in (("datastoreId", datastore_id), ("sourceImageSetId", source_id)):
            if not ID.match(value):
                raise ServiceError("ValidationException", f"{name} must match [0-9a-z]{{32}}")
        self._datastore(datastore_id)
        source_info = information.get("sourceImageSet") or {}
        source_version = source_info.get("latestVersionId")
        if not isinstance(source_version, str) or not VERSION.match(source_version):
            raise ServiceError("ValidationException", "sourceImageSet.latestVersionId is required")
        source = self._image_set(datastore_id, source_id)
        attributes = (source_info.get("DICOMCopies") or {}).get("copiableAttributes")
        selected = self._select(source.metadata, attributes)
        if source.state == "LOCKED":
            raise ServiceError("ConflictException", f"source image set {source_id} is locked")
        if source_version != str(source.version_id):
            raise ServiceError("ConflictException", f"source latestVersionId {source_version} is not the latest")
        if sum(1 for p in self.pending if p.datastore_id == datastore_id) >= self.max_concurrent_copies:
            raise ServiceError("ServiceQuotaExceededException", "too many concurrent copies in this data store")

        destination_info = information.get("destinationImageSet")
        inconsistent: list[str] = []
        if destination_info:
            destination_id = destination_info.get("imageSetId", "")
            if not ID.match(destination_id):
                raise ServiceError("ValidationException", "destinationImageSet.imageSetId must match [0-9a-z]{32}")
            destination = self._image_set(datastore_id, destination_id)
            if destination_id == source_id:
                raise ServiceError("ValidationException", "source and destination are the same image set")
            if destination.state == "LOCKED":
                raise ServiceError("ConflictException", f"destination image set {destination_id} is locked")
            if destination_info.get("latestVersionId") != str(destination.version_id):
                raise ServiceError("ConflictException", "destination latestVersionId is not the latest")
            inconsistent = inconsistent_elements(selected, destination.metadata)
            if inconsistent and not force and self.inconsistency_mode == "immediate":
                raise ServiceError("ValidationException", inconsistency_message(inconsistent))
            merged = merge_metadata(destination.metadata, selected)
            produced = destination.add_version("LOCKED", "COPYING", now)
        else:
            destination_id = secrets.token_hex(16)
            merged = copying.deepcopy(selected)
            merged["ImageSetID"] = destination_id
            # Version 1 exists at once and holds nothing until the copy lands.
            produced = ImageSetVersion(1, "LOCKED", "COPYING", now, without_series(merged))
            self.image_sets[(datastore_id, destination_id)] = ImageSet(
                destination_id, datastore_id, now, False, [produced]
            )

        source_workflow = source.workflow
        source.latest.state, source.latest.workflow = "LOCKED", "COPYING_WITH_READ_ONLY_ACCESS"
        source.latest.updated_at = now
        accepted = AcceptedCopy(
            datastore_id,
            source_id,
            source.version_id,
            source_workflow,
            destination_id,
            produced.version_id,
            new_destination=not destination_info,
            by=by,
            accepted_at=now,
            completes_at=now + self.copy_seconds,
            metadata=merged,
            inconsistent=[] if force else inconsistent,
            failure=failure,
            force=force,
            promote=promote,
        )
        self.pending.append(accepted)
        self.accepted.append(accepted)
        self._schedule(accepted.completes_at, LANDING, partial(self._land_copy, accepted))
        return accepted

    # --- internals -------------------------------------------------------------------
    def _take_copy_token(self) -> None:
        now = self.clock()
        self._tokens = min(self.copy_burst, self._tokens + (now - self._tokens_at) * self.copy_rate_per_second)
        self._tokens_at = now
        if self._tokens < 1.0 - 1e-9:
            raise ServiceError("ThrottlingException", "CopyImageSet rate exceeded")
        self._tokens -= 1.0

    def _schedule(self, at: float, rank: int, run: Callable[[float], None]) -> None:
        heapq.heappush(self._timeline, _Event(at, rank, next(self._sequence), run))
        for listener in self.timeline_listeners:
            listener(at)

    def settle(self) -> None:
        """Let everything the clock has passed happen now (copies land, their events go out)."""
        with self._lock:
            self._settle()

    def _settle(self) -> None:
        """Run, in time order, everything the clock has passed (each at its own time)."""
        now = self.clock()
        while self._timeline and self._timeline[0].at <= now:
            event = heapq.heappop(self._timeline)
            event.run(event.at)

    def _land_copy(self, accepted: AcceptedCopy, at: float) -> None:
        self.pending.remove(accepted)
        source = self.image_sets[(accepted.datastore_id, accepted.source_id)]
        destination = self.image_sets[(accepted.datastore_id, accepted.destination_id)]
        if source.deleted_at is None:  # unlocked; its record still says how its version came to be
            source.latest.state, source.latest.workflow, source.latest.updated_at = (
                "ACTIVE",
                accepted.source_workflow,
                at,
            )
        if destination.deleted_at is not None:
            return  # deleted mid-copy: nothing lands
        produced = destination.versions[accepted.destination_version_id - 1]
        produced.state, produced.updated_at = "ACTIVE", at
        failure = accepted.failure or (inconsistency_message(accepted.inconsistent) if accepted.inconsistent else None)
        if not failure and accepted.promote:
            primaries = self._primaries_holding(
                accepted.datastore_id, series_keys(accepted.metadata), excluding=destination
            )
            failure = PRIMARY_EXISTS if primaries else None
        if failure:
            # The version stays, holding the content it started with.
            produced.workflow, produced.message, accepted.outcome = "COPY_FAILED", failure, "COPY_FAILED"
        else:
            produced.workflow, produced.forced, produced.metadata = "COPIED", accepted.force, accepted.metadata
            accepted.outcome = "COPIED"
            if accepted.promote:
                destination.is_primary = True
        event = copy_outcome_event(
            accepted.datastore_id,
            destination.image_set_id,
            produced.workflow,
            at,
            account=self.account,
            region=self.region,
            version_id=produced.version_id,
            is_primary=destination.is_primary,
        )
        for listener in self.event_listeners:
            listener(event)

    def _datastore(self, datastore_id: str) -> None:
        if not ID.match(datastore_id):
            raise ServiceError("ValidationException", "datastoreId must match [0-9a-z]{32}")
        if datastore_id not in self.datastores:
            raise ServiceError("ResourceNotFoundException", f"data store {datastore_id} not found")

    def _primaries_holding(
        self, datastore_id: str, series: set[tuple[str, str]], excluding: ImageSet | None = None
    ) -> list[ImageSet]:
        """Primary image sets (not deleted) that hold one of these Study+Series."""
        return [
            image_set
            for (ds, _), image_set in self.image_sets.items()
            if ds == datastore_id
            and image_set is not excluding
            and image_set.is_primary
            and image_set.deleted_at is None
            and series & series_keys(image_set.metadata)
        ]

    def _find(self, image_set_id: str) -> ImageSet:
        """An image set by id alone, whatever its data store (ids are random: one match)."""
        found = [s for (_, i), s in self.image_sets.items() if i == image_set_id]
        if len(found) != 1:
            raise ServiceError("ResourceNotFoundException", f"{len(found)} image sets have the id {image_set_id}")
        return found[0]

    def _image_set(self, datastore_id: str, image_set_id: str, allow_deleted: bool = False) -> ImageSet:
        self._datastore(datastore_id)
        if not ID.match(image_set_id):
            raise ServiceError("ValidationException", "imageSetId must match [0-9a-z]{32}")
        image_set = self.image_sets.get((datastore_id, image_set_id))
        if image_set is None:
            raise ServiceError("ResourceNotFoundException", f"image set {image_set_id} not found")
        if image_set.deleted_at is not None and not allow_deleted:
            raise ServiceError("ResourceNotFoundException", f"image set {image_set_id} is deleted")
        return image_set

    def _arn(self, image_set: ImageSet) -> str:
        return (
            f"arn:aws:medical-imaging:{self.region}:{self.account}:datastore/{image_set.datastore_id}"
            f"/imageset/{image_set.image_set_id}"
        )

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

    def _copy_properties(self, image_set: ImageSet, version: ImageSetVersion) -> dict[str, Any]:
        return {
            "imageSetId": image_set.image_set_id,
            "latestVersionId": str(version.version_id),
            "imageSetState": version.state,
            "imageSetWorkflowStatus": version.workflow,
            "createdAt": image_set.created_at,
            "updatedAt": version.updated_at,
            "imageSetArn": self._arn(image_set),
        }

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

    @staticmethod
    def _select(metadata: dict[str, Any], attributes: str | None) -> dict[str, Any]:
        """The part of the source a copy takes: all of it, or the copiableAttributes subset."""
        if attributes is None:
            return copying.deepcopy(metadata)
        try:
            wanted = json.loads(attributes)
        except json.JSONDecodeError:
            raise ServiceError("ValidationException", "copiableAttributes is not valid JSON") from None
        series_wanted = (wanted.get("Study") or {}).get("Series") if isinstance(wanted, dict) else None
        if not isinstance(series_wanted, dict) or not series_wanted:
            raise ServiceError("ValidationException", "copiableAttributes must name Study.Series to copy")
        selected = copying.deepcopy(metadata)
        available = metadata.get("Study", {}).get("Series", {})
        chosen: dict[str, Any] = {}
        for series_uid, series_spec in series_wanted.items():
            if series_uid not in available:
                raise ServiceError("ValidationException", "copiableAttributes names a series the source lacks")
            series = copying.deepcopy(available[series_uid])
            instances_wanted = (series_spec or {}).get("Instances")
            if instances_wanted:
                missing = [sop for sop in instances_wanted if sop not in series.get("Instances", {})]
                if missing:
                    raise ServiceError("ValidationException", "copiableAttributes names an instance the source lacks")
                series["Instances"] = {sop: series["Instances"][sop] for sop in instances_wanted}
            chosen[series_uid] = series
        selected["Study"]["Series"] = chosen
        return selected


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


def copy_outcome_event(
    datastore_id: str,
    image_set_id: str,
    workflow_status: str,
    at: float,
    *,
    account: str,
    region: str,
    version_id: int = 1,
    is_primary: bool = False,
) -> dict[str, Any]:
    """The EventBridge event HealthImaging sends when a copy into `image_set_id` lands, as the developer guide's
    example shows it (event-notifications: "Image Set Copied", "Image Set Copy Failed"); the schema registry's
    pattern (aws.medical-imaging@ImageSetCopied) names no version, so the pipeline does not rely on one."""
    detail_type = "Image Set Copied" if workflow_status == "COPIED" else "Image Set Copy Failed"
    when = datetime.datetime.fromtimestamp(int(at), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": secrets.token_hex(16),
        "detail-type": detail_type,
        "source": "aws.medical-imaging",
        "account": account,
        "time": when,
        "region": region,
        "resources": [f"arn:aws:medical-imaging:{region}:{account}:datastore/{datastore_id}/imageset/{image_set_id}"],
        "detail": {
            "imagingVersion": "1.0",
            "datastoreId": datastore_id,
            "imageSetId": image_set_id,
            "imageSetVersion": str(version_id),
            "isPrimary": is_primary,
            "imageSetState": "ACTIVE",
            "imageSetWorkflowStatus": workflow_status,
        },
    }


def checked_message(message: str) -> str:
    """A message as the service could send it (the API model's pattern), or ValueError."""
    if not MESSAGE.fullmatch(message):
        raise ValueError(f"{message!r} does not fit the API's message pattern [\\w -:`]+ (1..2048 characters)")
    return message


def updated_metadata(document: dict[str, Any], updatable_attributes: dict[str, Any]) -> dict[str, Any]:
    """The document after UpdateImageSetMetadata's updatableAttributes (Patient / Study level elements)."""
    updated = copying.deepcopy(document)
    for level in PATIENT_AND_STUDY_LEVELS:
        changes = updatable_attributes.get(level, {}).get("DICOM", {})
        if changes:
            updated.setdefault(level, {}).setdefault("DICOM", {}).update(changes)
    return updated


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


def series_keys(document: dict[str, Any]) -> set[tuple[str, str]]:
    """The (StudyInstanceUID, SeriesInstanceUID) pairs an image set document holds."""
    study = document.get("Study", {})
    study_uid = study.get("DICOM", {}).get("StudyInstanceUID", "")
    return {(study_uid, series_uid) for series_uid in study.get("Series", {})}


def without_series(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its Patient and Study levels but no series: an image set nothing landed in yet."""
    empty = copying.deepcopy({key: value for key, value in document.items() if key != "Study"})
    empty["Study"] = {"DICOM": copying.deepcopy(document.get("Study", {}).get("DICOM", {})), "Series": {}}
    return empty


def inconsistent_elements(source: dict[str, Any], destination: dict[str, Any]) -> list[str]:
    """Names of Patient/Study/Series level elements whose values differ."""
    names: set[str] = set()
    for level in PATIENT_AND_STUDY_LEVELS:
        left = source.get(level, {}).get("DICOM", {})
        right = destination.get(level, {}).get("DICOM", {})
        names.update(k for k in set(left) & set(right) if left[k] != right[k])
    left_series = source.get("Study", {}).get("Series", {})
    right_series = destination.get("Study", {}).get("Series", {})
    for uid in set(left_series) & set(right_series):
        left, right = left_series[uid].get("DICOM", {}), right_series[uid].get("DICOM", {})
        names.update(k for k in set(left) & set(right) if left[k] != right[k])
    return sorted(names)


def inconsistency_message(names: list[str]) -> str:
    return f"Inconsistent metadata between source and destination: {', '.join(names)}. Use force to copy"


def merge_metadata(destination: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """Destination metadata after a copy: the source's instances and new series added. The
    destination's Patient, Study and Series level elements stay as they are, forced or not
    (AWS guide, "Copying an image set": with force they "remain unchanged")."""
    merged = copying.deepcopy(destination)
    series = merged.setdefault("Study", {}).setdefault("Series", {})
    for uid, value in source.get("Study", {}).get("Series", {}).items():
        if uid in series:
            series[uid].setdefault("Instances", {}).update(copying.deepcopy(value.get("Instances", {})))
        else:
            series[uid] = copying.deepcopy(value)
    return merged
