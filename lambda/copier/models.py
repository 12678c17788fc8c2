"""Every shape the function accepts or returns.

Inputs are validated here, before any HealthImaging call; an invalid field is named
in the error. Field names on the wire are camelCase (the console contract: docs/operations.md).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from copier.errors import InvalidCopyRequest

ResourceId = Annotated[str, Field(pattern=r"^[0-9a-z]{32}$")]
VersionId = Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]
COPIABLE_ATTRIBUTES_MAX_CHARS = 260_000


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


class CopyRequest(WireModel):
    """One logical copy: the console contract, and what every later step carries."""

    datastore_id: ResourceId
    source_image_set_id: ResourceId
    source_version_id: VersionId | None = None
    destination_image_set_id: ResourceId | None = None
    destination_version_id: VersionId | None = None
    copiable_attributes: str | None = None
    force: StrictBool = False
    promote_to_primary: StrictBool = False

    @field_validator("copiable_attributes", mode="before")
    @classmethod
    def _canonical_attributes(cls, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError("must be a JSON object (as a string or an object)") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object (as a string or an object)")
        study = value.get("Study")
        if study is not None and not isinstance(study, dict):
            raise ValueError("'Study' must be an object")
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
        if len(text) > COPIABLE_ATTRIBUTES_MAX_CHARS:
            raise ValueError(f"is {len(text)} characters; the API allows {COPIABLE_ATTRIBUTES_MAX_CHARS}")
        return text

    @field_validator("destination_image_set_id")
    @classmethod
    def _another_image_set(cls, value: str | None, info: Any) -> str | None:
        # The service refuses it too, but only once called; AwaitCopy's two wake items would be one.
        if value is not None and value == info.data.get("source_image_set_id"):
            raise ValueError("is the source image set: a copy goes into another image set")
        return value

    @field_validator("destination_version_id")
    @classmethod
    def _version_needs_destination(cls, value: str | None, info: Any) -> str | None:
        if value is not None and info.data.get("destination_image_set_id") is None:
            raise ValueError("is set but destinationImageSetId is not")
        return value


class HealthImagingEventDetail(BaseModel):
    """The detail of an aws.medical-imaging image set event (both id spellings)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    datastore_id: ResourceId = Field(alias="datastoreId")
    image_set_id: ResourceId = Field(validation_alias=AliasChoices("imageSetId", "imagesetId"))
    image_set_version: VersionId | None = Field(default=None, alias="imageSetVersion")
    is_primary: StrictBool | None = Field(default=None, alias="isPrimary")

    @field_validator("image_set_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class HealthImagingEvent(EventBridgeModel):
    detail: HealthImagingEventDetail


class AdmittedVersion(WireModel):
    source_image_set_id: ResourceId
    source_version_id: VersionId


class AdmittedCopy(WireModel):
    """What the dispatcher starts: a copy journal entry's plan, named by its image set version."""

    admitted: AdmittedVersion


class CopyPlan(WireModel):
    """What intake decided: copy this request (maybe after resolving a destination), or skip."""

    request: CopyRequest | None = None
    resolve_destination: bool = False
    skip: bool = False
    reason: str | None = None


class CopyProgress(WireModel):
    """One copy after StartCopy or ConfirmCopy, as the wait loop sees it.

    COPYING / COPIED: the service took the copy on; `destination_version_id` is the version
    THIS copy produces, the one its outcome is judged on. UNCONFIRMED: confirmation needs
    another look. NOT_ACCEPTED: confirmation proved nothing of ours landed: start again.
    """

    status: Literal["COPYING", "COPIED", "UNCONFIRMED", "NOT_ACCEPTED"]
    destination_image_set_id: ResourceId | None = None
    destination_version_id: VersionId | None = None
    baseline_version_id: VersionId | None = None  # the destination's version before this copy
    source_version_id: VersionId | None = None
    next_poll_seconds: int = 0
    waited_seconds: int = 0
    polls: int = 0
    attempts: int = Field(default=1, ge=1)  # StartCopy task attempts (Step Functions retries + 1)
    forced: bool = False
    # When CopyImageSet was called (epoch second): what the wait is measured from. Absent in the answers
    # saved by releases before the completion events woke copies (they counted their waits instead).
    started_at: int | None = None
    # AwaitCopy's condition: a completion event at or after this second (epoch) was not yet looked at.
    wake_since: int | None = None
    # AwaitCopy's last write failed (not its condition): wait nextPollSeconds before it tries again.
    await_failed: bool = False


def field_errors(error: ValidationError, prefix: str = "") -> str:
    """'field: problem' for each invalid field, without echoing the offending value."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "input"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{prefix}{location}: {message}")
    return "; ".join(parts)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], payload: object, what: str, prefix: str = "") -> M:
    """Validate payload as model, or raise InvalidCopyRequest naming the fields."""
    if not isinstance(payload, dict):
        raise InvalidCopyRequest(f"{what} must be a JSON object, got {type(payload).__name__}")
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise InvalidCopyRequest(f"invalid {what}: {field_errors(error, prefix)}") from None


# --- backfill ------------------------------------------------------------------------------------------
BackfillId = Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{1,40}$")]  # in execution names: [0-9A-Za-z_-]
StudyInstanceUid = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)]  # DICOM UI: digits, dots


class BackfillFilters(WireModel):
    """Which existing image sets a backfill covers: a createdAt range (either end open), some studies, or
    everything. The range's end is fixed when the backfill starts, so its own copies never join it."""

    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    study_instance_uids: list[StudyInstanceUid] | None = Field(default=None, min_length=1, max_length=1_000)
    everything: StrictBool = False

    @model_validator(mode="after")
    def _one_kind(self) -> BackfillFilters:
        # everything: the backfill's start fixes its end (createdBefore) as it does an open range's.
        ranged = self.created_after is not None or (self.created_before is not None and not self.everything)
        if sum((ranged, self.study_instance_uids is not None, self.everything)) != 1:
            raise ValueError("give a createdAt range, studyInstanceUids or everything (exactly one of them)")
        if self.created_after and self.created_before and self.created_after >= self.created_before:
            raise ValueError("createdAfter must be before createdBefore")
        return self


class BackfillPosition(WireModel):
    """The last image set a backfill's search went past (searches sort by createdAt, ascending): its createdAt
    (epoch seconds) and every image set seen at that instant."""

    created_at: float
    image_set_ids: list[str]

    def passed(self, created_at: float, image_set_id: str) -> bool:
        """Seen already: earlier, or at the same instant and among those seen."""
        return created_at < self.created_at or (created_at == self.created_at and image_set_id in self.image_set_ids)


class BackfillCursor(WireModel):
    """Where a backfill is: which of its searches, that search's next page, and how far it went. A search
    whose saved token HealthImaging refuses (old: its lifetime is not documented) starts again from the
    position: `since` is then the lower createdAt bound of the search the token belongs to. Cursors written
    before positions existed (0.1.0) have neither: such a search starts again from its beginning."""

    search: int = Field(default=0, ge=0)
    next_token: str | None = Field(default=None, min_length=1, max_length=8_192)
    position: BackfillPosition | None = None
    since: float | None = None


class BackfillInput(WireModel):
    """The backfill workflow's input (`ops.cli backfill start|resume`, or its own next execution)."""

    backfill_id: BackfillId
    filters: BackfillFilters
