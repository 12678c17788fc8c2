"""CopyImageSet: the request checked as the service checks it (ids, versions, locks, the concurrency quota,
copiableAttributes, inconsistent metadata), the copy's lifecycle (the version it produces exists at once,
LOCKED / COPYING, the source's latest LOCKED / COPYING_WITH_READ_ONLY_ACCESS meanwhile), its asynchronous
completion after `copy_seconds` (ACTIVE / COPIED with the merged document, or ACTIVE / COPY_FAILED with a message,
keeping the content it started with; promoteToPrimary), force, the event it announces, and injected faults."""

from __future__ import annotations

import copy as copying
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from offline.emulator.errors import NoAnswer, ServiceError
from offline.emulator.events import CopyEvents, copy_outcome_event
from offline.emulator.metadata import (
    inconsistency_message,
    inconsistent_elements,
    merge_metadata,
    series_keys,
    without_series,
)
from offline.emulator.quotas import CopyQuotas
from offline.emulator.store import ID, VERSION, ImageSet, ImageSetStore, ImageSetVersion
from offline.emulator.timeline import LANDING

MESSAGE = re.compile(r"[\w -:`]{1,2048}")  # the API model's Message shape
PRIMARY_EXISTS = "A primary image set of this series exists already. Copy into it or without promoteToPrimary"
InconsistencyMode = Literal["immediate", "deferred"]
CopyOutcome = Literal["COPIED", "COPY_FAILED"]
PIPELINE = "pipeline"  # who asked, for every copy asked through call()


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
class FaultPlan:
    """Faults injected on the next CopyImageSet calls (tests and the fault suite)."""

    # "error:<Code>" answers that error without copying; "accept-then-500" copies but
    # answers InternalServerException (the ambiguous case); "fail-later:<message>" accepts
    # the copy and ends it COPY_FAILED with that message; "accept-then-timeout" copies but
    # never answers.
    copy_faults: list[str] = field(default_factory=list)


def checked_message(message: str) -> str:
    """A message as the service could send it (the API model's pattern), or ValueError."""
    if not MESSAGE.fullmatch(message):
        raise ValueError(f"{message!r} does not fit the API's message pattern [\\w -:`]+ (1..2048 characters)")
    return message


class Copies(ImageSetStore, CopyQuotas):
    """CopyImageSet, from the request to its landing."""

    copy_seconds: float
    inconsistency_mode: InconsistencyMode
    faults: FaultPlan
    accepted: list[AcceptedCopy]  # every copy the service took on, answered or not, by anyone
    event_listeners: list[Callable[[dict[str, Any]], None]]  # copy outcome events, as they happen
    copy_events: CopyEvents  # which image set a copy's outcome events name

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
        self._check_concurrent_copies(datastore_id)

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
        named = {
            "destination": [(destination, produced)],
            "source": [(source, source.latest)],
            "both": [(destination, produced), (source, source.latest)],
            "none": [],
        }[self.copy_events]
        for image_set, version in named:
            event = copy_outcome_event(
                accepted.datastore_id,
                image_set.image_set_id,
                produced.workflow,
                at,
                account=self.account,
                region=self.region,
                version_id=version.version_id,
                is_primary=image_set.is_primary,
            )
            for listener in self.event_listeners:
                listener(event)

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
