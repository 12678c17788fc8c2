"""First step of every execution: validate and normalise the input, or decide to skip.

Accepts the console contract (README, "Starting a copy by hand") or a HealthImaging
EventBridge event. Fails with InvalidCopyRequest naming the field before any
HealthImaging call.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from copier import copy_record, journal
from copier.errors import InvalidCopyRequest
from copier.journal import JournalStatus
from copier.models import CopyPlan, CopyRequest, HealthImagingEvent, parse
from copier.settings import CopyPolicy, load_settings

logger = Logger(child=True)
EVENT_SOURCE = "aws.medical-imaging"


def is_event(raw: object) -> bool:
    return isinstance(raw, dict) and "detail-type" in raw and "source" in raw


def plan_copy(raw: Any) -> CopyPlan:
    if is_event(raw):
        return _plan_for_event(raw)
    request = parse(CopyRequest, raw, "console input")
    _check_datastore(request.datastore_id, "datastoreId")
    return CopyPlan(request=request)


def _check_datastore(datastore_id: str, field: str) -> None:
    configured = load_settings().datastore_id
    if datastore_id != configured:
        raise InvalidCopyRequest(f"{field}: {datastore_id} is not this stack's data store ({configured})")


def _plan_for_event(raw: dict[str, Any]) -> CopyPlan:
    if raw.get("source") != EVENT_SOURCE:
        raise InvalidCopyRequest(f"source: expected {EVENT_SOURCE!r}")
    event = parse(HealthImagingEvent, raw, "HealthImaging event")
    detail = event.detail
    _check_datastore(detail.datastore_id, "detail.datastoreId")
    if event.detail_type not in load_settings().trigger_detail_types:
        return _skip(
            detail.image_set_id, detail.image_set_version, f"detail-type {event.detail_type!r} does not trigger copies"
        )
    return plan_for_image_set(
        detail.image_set_id,
        detail.image_set_version,
        is_primary=detail.is_primary,
        why=f"{event.detail_type} event",
        admitted_as=json.dumps(raw, sort_keys=True),
    )


def plan_for_image_set(
    image_set_id: str, version_id: str | None, *, is_primary: bool | None, why: str, admitted_as: str | None = None
) -> CopyPlan:
    """The copy policy's decision about one image set version, journaled: an event's (admitted as that
    event), or one that reconciliation found."""
    settings = load_settings()
    if settings.copy_policy is CopyPolicy.OFF:
        return _skip(image_set_id, version_id, "copy policy is 'off' (console-only)")
    if copy_record.written_by_pipeline(image_set_id, version_id):
        return _skip(image_set_id, version_id, "image set was written by this pipeline (copy-storm guard)")
    merge = settings.copy_policy is CopyPolicy.MERGE_INTO_PRIMARY
    if merge and is_primary:
        return _skip(image_set_id, version_id, "image set is already primary: nothing to merge")
    request = CopyRequest(
        datastore_id=settings.datastore_id, source_image_set_id=image_set_id, source_version_id=version_id
    )
    journal.for_request(
        request,
        JournalStatus.PENDING,
        admitted_as=admitted_as,
        decision="copy",
        reason=f"{why}, copyPolicy {settings.copy_policy.value}",
    )
    return CopyPlan(request=request, resolve_destination=merge)


def _skip(image_set_id: str, version_id: str | None, reason: str) -> CopyPlan:
    logger.info("Image set skipped", extra={"imageSetId": image_set_id, "reason": reason})
    if version_id is not None:
        journal.record(image_set_id, version_id, JournalStatus.SKIPPED, decision="skip", reason=reason)
    return CopyPlan(skip=True, reason=reason)
