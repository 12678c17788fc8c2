"""The force decision: a patient-safety gate in front of CopyImageSet(force=True).

`same-patient` compares patient identity elements of source and destination from
GetImageSetMetadata by DICOM's rules (dicom.py) and reports only the NAMES of elements that differ.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from copier import dicom, inconsistency, journal
from copier.errors import ForceRefused
from copier.inconsistency import Summaries
from copier.journal import JournalStatus
from copier.models import CopyRequest
from copier.settings import ForcePolicy, load_settings

logger = Logger(child=True)
metrics = Metrics()


def authorise_force(*, request: CopyRequest) -> CopyRequest:
    """The request to start again with force=True, if the policy allows it; ForceRefused otherwise."""
    forced = request.model_copy(update={"force": True})
    pair = None
    inconsistent: list[str] = []
    if forced.destination_image_set_id is not None:
        pair = inconsistency.summaries(
            forced, source_version_id=forced.source_version_id, destination_version_id=forced.destination_version_id
        )
        inconsistent = inconsistency.differing_elements(forced, pair)
    _enforce(forced, f" (copy needs force for inconsistent {', '.join(inconsistent) or 'metadata'})", pair)
    policy = load_settings().force_policy.value
    # The audit trail of forced copies: policy, decision and element NAMES.
    journal.for_request(
        request,
        JournalStatus.STARTED,
        forceDecision="authorised",
        forcePolicy=policy,
        inconsistentElements=inconsistent,
    )
    metrics.add_metric(name="ForcesAuthorised", unit=MetricUnit.Count, value=1)
    logger.warning(
        "Force authorised",
        extra={
            "forcePolicy": policy,
            "inconsistentElements": inconsistent,
            "destinationImageSetId": forced.destination_image_set_id,
        },
    )
    return forced


def ensure_force_allowed(request: CopyRequest) -> None:
    """Every forced CopyImageSet passes the policy, including force asked for from the console."""
    if request.force:
        _enforce(request, " (force was asked for)")


def _enforce(request: CopyRequest, context: str, pair: Summaries | None = None) -> None:
    policy = load_settings().force_policy
    if policy is ForcePolicy.NEVER:
        _refuse(request, f"forcePolicy 'never' forbids forcing a copy{context}", [])
    if policy is ForcePolicy.SAME_PATIENT and request.destination_image_set_id:
        source, destination = pair or inconsistency.summaries(
            request, source_version_id=request.source_version_id, destination_version_id=request.destination_version_id
        )
        differing = dicom.identity_differences(source, destination)
        if differing:
            _refuse(
                request,
                f"forcePolicy 'same-patient': source and destination differ in {', '.join(differing)}{context}",
                differing,
            )


def _refuse(request: CopyRequest, reason: str, differing: list[str]) -> None:
    metrics.add_metric(name="ForceRefusals", unit=MetricUnit.Count, value=1)
    logger.warning("Force refused", extra={"reason": reason})
    journal.for_request(
        request,
        JournalStatus.FAILED,
        forceDecision="refused",
        forcePolicy=load_settings().force_policy.value,
        differingElements=differing,
        error="ForceRefused",
    )
    raise ForceRefused(reason)
