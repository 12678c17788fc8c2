"""What to copy: validate and normalise an input, decide by the copy policy, journal the decision.

Three inputs, one decision:
- a HealthImaging EventBridge event, from the admission queue (`admit_event`: the decision goes into
  the copy journal as PENDING, the dispatcher starts it later) or given to an execution by hand;
- the console contract (docs/operations.md, "Starting a copy by hand"): copied as asked;
- `{"admitted": {...}}`, what the dispatcher starts: the plan the journal entry was admitted with.
Fails with InvalidCopyRequest naming the field before any HealthImaging call.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from copier import copy_record, healthimaging, journal
from copier.errors import InvalidCopyRequest
from copier.journal import JournalStatus, Lane
from copier.models import AdmittedCopy, CopyPlan, CopyRequest, HealthImagingEvent, parse
from copier.settings import CopyPolicy, load_settings

logger = Logger(child=True)
EVENT_SOURCE = "aws.medical-imaging"


def is_event(raw: object) -> bool:
    return isinstance(raw, dict) and "detail-type" in raw and "source" in raw


def plan_copy(raw: Any, *, execution_id: str | None = None) -> CopyPlan:
    """ValidateInput: what this execution copies."""
    if is_event(raw):
        return _plan_for_event(raw, started_by=execution_id)
    if isinstance(raw, dict) and "admitted" in raw:
        return _plan_admitted(parse(AdmittedCopy, raw, "dispatched input"))
    request = parse(CopyRequest, raw, "console input")
    check_datastore(request.datastore_id, "datastoreId")
    return CopyPlan(request=request)


def admit_event(raw: Any) -> CopyPlan:
    """The admission queue's consumer: an event's decision, journaled; a copy waits in the backlog."""
    if not is_event(raw):
        raise InvalidCopyRequest("message: not an EventBridge event (no 'source' or 'detail-type')")
    return _plan_for_event(raw, started_by=None)


def check_datastore(datastore_id: str, field: str) -> None:
    configured = load_settings().datastore_id
    if datastore_id != configured:
        raise InvalidCopyRequest(f"{field}: {datastore_id} is not this stack's data store ({configured})")


def _plan_for_event(raw: dict[str, Any], *, started_by: str | None) -> CopyPlan:
    if raw.get("source") != EVENT_SOURCE:
        raise InvalidCopyRequest(f"source: expected {EVENT_SOURCE!r}")
    event = parse(HealthImagingEvent, raw, "HealthImaging event")
    detail = event.detail
    check_datastore(detail.datastore_id, "detail.datastoreId")
    if event.detail_type not in load_settings().trigger_detail_types:
        return _skip(
            detail.image_set_id, detail.image_set_version, f"detail-type {event.detail_type!r} does not trigger copies"
        )
    return plan_for_image_set(
        detail.image_set_id,
        detail.image_set_version,
        is_primary=detail.is_primary,
        why=f"{event.detail_type} event",
        lane=Lane.LIVE,
        started_by=started_by,
    )


def _plan_admitted(admitted: AdmittedCopy) -> CopyPlan:
    version = admitted.admitted
    entry = journal.read(version.source_image_set_id, version.source_version_id)
    plan = journal.planned(entry) if entry else None
    if entry is None or plan is None or plan.request is None:
        raise InvalidCopyRequest(
            f"admitted: no admitted copy of {version.source_image_set_id} version {version.source_version_id}"
            " in the copy journal"
        )
    check_datastore(plan.request.datastore_id, "admitted: the plan's datastoreId")
    if entry["journalStatus"] in journal.FINAL:
        return CopyPlan(skip=True, reason=f"already copied (copy journal: {entry['journalStatus']})")
    return plan


def plan_for_image_set(
    image_set_id: str,
    version_id: str | None,
    *,
    is_primary: bool | None,
    why: str,
    lane: Lane,
    started_by: str | None = None,
    **fields: str,
) -> CopyPlan:
    """The copy policy's decision about one image set version, journaled: PENDING in the backlog's `lane` for
    the dispatcher (live: an event from the queue, a sweep; bulk: a backfill), or STARTED when the execution
    `started_by` copies it itself (an event given to an execution by hand). A live admission of a version that
    waits in the bulk lane promotes it: one entry, one copy, now among the new imports."""
    settings = load_settings()
    if settings.copy_policy is CopyPolicy.OFF:
        return _skip(image_set_id, version_id, "copy policy is 'off' (console-only)")
    if version_id is None and started_by is None:
        # The backlog holds versions: an event that names none admits the version it announced, the latest.
        version_id = str(healthimaging.get_image_set(settings.datastore_id, image_set_id)["versionId"])
    if copy_record.written_by_pipeline(image_set_id, version_id):
        return _skip(image_set_id, version_id, "image set was written by this pipeline (copy-storm guard)")
    merge = settings.copy_policy is CopyPolicy.MERGE_INTO_PRIMARY
    if merge and is_primary:
        return _skip(image_set_id, version_id, "image set is already primary: nothing to merge")
    request = CopyRequest(
        datastore_id=settings.datastore_id, source_image_set_id=image_set_id, source_version_id=version_id
    )
    plan = CopyPlan(request=request, resolve_destination=merge)
    reason = f"{why}, copyPolicy {settings.copy_policy.value}"
    if version_id is None:
        return plan  # started by hand without a version: journaled from StartCopy on, once it is known
    if started_by is None:
        admitted = journal.admit(image_set_id, version_id, plan, lane=lane, reason=reason, **fields)
        if not admitted and lane is Lane.LIVE and journal.promote(image_set_id, version_id):
            logger.info("Copy promoted to the live lane", extra={"imageSetId": image_set_id, "versionId": version_id})
    else:
        journal.record(
            image_set_id,
            version_id,
            JournalStatus.STARTED,
            plan=plan,
            only_from=(None, JournalStatus.PENDING),
            lane=lane,
            decision="copy",
            reason=reason,
            executionId=started_by,
        )
    return plan


def _skip(image_set_id: str, version_id: str | None, reason: str) -> CopyPlan:
    logger.info("Image set skipped", extra={"imageSetId": image_set_id, "reason": reason})
    if version_id is not None:
        journal.record(image_set_id, version_id, JournalStatus.SKIPPED, decision="skip", reason=reason)
    return CopyPlan(skip=True, reason=reason)
