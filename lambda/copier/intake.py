"""First step of every execution: validate and normalise the input, or decide to skip.

Accepts the console contract (README, "Starting a copy by hand") or a HealthImaging
EventBridge event. Fails with InvalidCopyRequest naming the field before any
HealthImaging call.
"""

from __future__ import annotations

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
    settings = load_settings()

    def skip(reason: str) -> CopyPlan:
        logger.info("Event skipped", extra={"imageSetId": detail.image_set_id, "reason": reason})
        if detail.image_set_version is not None:
            journal.record(
                detail.image_set_id, detail.image_set_version, JournalStatus.SKIPPED, decision="skip", reason=reason
            )
        return CopyPlan(skip=True, reason=reason)

    if event.detail_type not in settings.trigger_detail_types:
        return skip(f"detail-type {event.detail_type!r} does not trigger copies")
    if settings.copy_policy is CopyPolicy.OFF:
        return skip("copy policy is 'off' (console-only)")
    if copy_record.written_by_pipeline(detail.image_set_id, detail.image_set_version):
        return skip("image set was written by this pipeline (copy-storm guard)")
    merge = settings.copy_policy is CopyPolicy.MERGE_INTO_PRIMARY
    if merge and detail.is_primary:
        return skip("image set is already primary: nothing to merge")
    request = CopyRequest(
        datastore_id=detail.datastore_id,
        source_image_set_id=detail.image_set_id,
        source_version_id=detail.image_set_version,
    )
    reason = f"{event.detail_type} event, copyPolicy {settings.copy_policy.value}"
    journal.for_request(request, JournalStatus.PENDING, decision="copy", reason=reason)
    return CopyPlan(request=request, resolve_destination=merge)
