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
which stands for the pipeline's own rate, unless it is another client of the account's quota
(`takes_quota`): then it takes one, or is refused ThrottlingException. A metadata update makes a version LOCKED /
UPDATING for `update_seconds`, then ACTIVE / UPDATED. `accepted` records every copy the
service took on and who asked (`by`: "pipeline" for calls through `call()`);
`accepted_copies`, `instances` and `forced` are what tests read.

Events. A copy that lands (COPIED or COPY_FAILED) is announced as HealthImaging announces it to
EventBridge: an "Image Set Copied" / "Image Set Copy Failed" event about the destination image set (or the
source, or both, or none: `copy_events`, as AWS does not say which), detail `imagingVersion`, `datastoreId`,
`imageSetId`, `imageSetState`, `imageSetWorkflowStatus` and no version (the service's event schema), `time`
the landing's second. Listeners (`event_listeners`) get each one when the emulator settles;
`timeline_listeners` are told when something will happen at a time, so a driver can settle the emulator then
(`settle()`) rather than at the next call.

Operations take and return the wire shapes (camelCase dicts, parameters under the
botocore model's member names); `offline.wire` puts them behind HTTP so a real boto3
client talks to this.

The package, by API area: `HealthImagingEmulator` is made of one part per area, and callers import
from `offline.emulator` alone.
- `store.py`: data stores, image sets and their versions, primaries, seeding and deletion, lookups.
- `timeline.py`: what the clock brings about, run lazily in time order (`settle()`).
- `copies.py`: CopyImageSet, its lifecycle, asynchronous completion, conflicts, force, injected faults.
- `quotas.py`: CopyImageSet's token bucket and the concurrent copies per data store.
- `reads.py`: GetImageSet, GetImageSetMetadata, ListImageSetVersions, SearchImageSets.
- `other_writers.py`: another client's copies and metadata updates, scheduled.
- `metadata.py`: what copies and updates do to a metadata document.
- `events.py`: the EventBridge events a landing copy sends.
- `errors.py`: error answers and no answer.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from offline.emulator.copies import PIPELINE, AcceptedCopy, CopyOutcome, FaultPlan, InconsistencyMode
from offline.emulator.errors import NoAnswer, ServiceError
from offline.emulator.events import CopyEvents, copy_outcome_event
from offline.emulator.other_writers import OTHER_WRITER, OtherWriters, ScheduledCopy, ScheduledUpdate
from offline.emulator.reads import Reads
from offline.emulator.store import ImageSet, ImageSetVersion

__all__ = [
    "OTHER_WRITER",
    "PIPELINE",
    "AcceptedCopy",
    "CopyEvents",
    "CopyOutcome",
    "FaultPlan",
    "HealthImagingEmulator",
    "ImageSet",
    "ImageSetVersion",
    "InconsistencyMode",
    "NoAnswer",
    "ScheduledCopy",
    "ScheduledUpdate",
    "ServiceError",
    "copy_outcome_event",
]


class HealthImagingEmulator(OtherWriters, Reads):
    """HealthImaging for one account and Region: its state (declared by each area's part), the operations
    through `call()`, and what tests read."""

    calls: list[tuple[str, int]]  # (operation, HTTP status) of every call

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
        copy_events: CopyEvents = "destination",
    ) -> None:
        self.clock = clock
        self.account = account
        self.region = region
        self.copy_seconds = copy_seconds
        self.update_seconds = update_seconds
        self.copy_rate_per_second = copy_rate_per_second
        self.copy_burst = copy_burst
        self.max_concurrent_copies = max_concurrent_copies
        self.inconsistency_mode = inconsistency_mode
        self.search_token_max_age_seconds = search_token_max_age_seconds
        self.copy_events = copy_events
        self.faults = FaultPlan()
        self.datastores = set()
        self.image_sets = {}
        self.pending = []
        self.calls = []
        self.accepted = []
        self._timeline = []
        self._sequence = itertools.count()
        self._tokens = copy_burst
        self._tokens_at = clock()
        self._lock = threading.RLock()
        self._search_fields = {}
        self.event_listeners = []
        self.timeline_listeners = []
        self._bodies = {}

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
