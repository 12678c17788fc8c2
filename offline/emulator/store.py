"""The image set store: data stores, image sets and each one's versions (every version keeps its own record:
state, workflow status, message, forced flag, updatedAt, and its own metadata document), primaries (at most one
per series), and the lookups that answer ValidationException or ResourceNotFoundException as the service does.
A version's state LOCKED is the lock copies and updates take. Seeding stands for an import: an image set is
primary unless a primary image set of one of its Study+Series exists."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from offline import documents
from offline.emulator.errors import ServiceError
from offline.emulator.metadata import series_keys
from offline.emulator.timeline import Timeline

ID = re.compile(r"^[0-9a-z]{32}$")
VERSION = re.compile(r"^\d+$")


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


class ImageSetStore(Timeline):
    """Data stores and their image sets, by (data store, image set id)."""

    account: str
    region: str
    datastores: set[str]
    image_sets: dict[tuple[str, str], ImageSet]

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
