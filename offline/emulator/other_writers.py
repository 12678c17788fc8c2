"""Other writers: another client's CopyImageSet or UpdateImageSetMetadata, scheduled for a time and issued
when the clock reaches it, on the versions latest then. A copy follows the pipeline's rules (locks, versions,
inconsistency, the concurrency quota) but takes no token from the CopyImageSet bucket, unless it is another client
of the account's quota (`takes_quota`: it takes one, or is refused ThrottlingException); an update makes a version
LOCKED / UPDATING for `update_seconds`, then ACTIVE / UPDATED. Each records what became of it (`accepted` or
`version_id`, or `refusal`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from offline.emulator.copies import PIPELINE, AcceptedCopy, Copies, CopyOutcome, checked_message
from offline.emulator.errors import ServiceError
from offline.emulator.metadata import updated_metadata
from offline.emulator.store import ImageSet, ImageSetVersion
from offline.emulator.timeline import LANDING, WRITE

OTHER_WRITER = "other-writer"  # who asked, by default, for scheduled writes


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
    takes_quota: bool = False  # another client of the account's CopyImageSet quota: it takes a token
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


class OtherWriters(Copies):
    """Writes scheduled by tests and the demo on behalf of another client."""

    update_seconds: float

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
        takes_quota: bool = False,
    ) -> ScheduledCopy:
        """Another writer's CopyImageSet at `at`, under the pipeline's rules but outside its token bucket
        unless `takes_quota` (a client sharing the account's quota: refused ThrottlingException without a token).

        It names the latest versions of that moment and is refused (see `refusal`) or accepted
        (see `accepted`) like any copy: locks, versions, inconsistency, the concurrency quota.
        outcome="COPY_FAILED" makes an accepted copy end COPY_FAILED with `message`.
        """
        if outcome == "COPIED" and message is not None:
            raise ValueError("a message goes with outcome COPY_FAILED only")
        failure = checked_message(message or "Image set copy failed") if outcome == "COPY_FAILED" else None
        with self._lock:
            datastore_id = self._future_write(at, by, source_id, destination_id)
            scheduled = ScheduledCopy(at, datastore_id, source_id, destination_id, failure, force, by, takes_quota)
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
            if scheduled.takes_quota:
                self._take_copy_token(at)
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
