"""The force decision: a patient-safety gate in front of CopyImageSet(force=True).

`same-patient` compares patient identity elements of source and destination from
GetImageSetMetadata and reports only the NAMES of elements that differ.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from copier import healthimaging
from copier.errors import ForceRefused
from copier.models import CopyRequest
from copier.settings import ForcePolicy, load_settings

logger = Logger(child=True)
metrics = Metrics()

PATIENT_IDENTITY_ELEMENTS = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")


def _patient(metadata: dict[str, Any]) -> dict[str, Any]:
    patient = metadata.get("Patient", {}).get("DICOM", {})
    return patient if isinstance(patient, dict) else {}


def _normalised(value: Any) -> str:
    return " ".join(str(value).split()).upper() if value is not None else ""


def differing_identity_elements(source: dict[str, Any], destination: dict[str, Any]) -> list[str]:
    """Names of patient identity elements that differ (or PatientID when it is absent)."""
    left, right = _patient(source), _patient(destination)
    if not _normalised(left.get("PatientID")) or not _normalised(right.get("PatientID")):
        return ["PatientID"]  # identity cannot be established without it
    return [name for name in PATIENT_IDENTITY_ELEMENTS if _normalised(left.get(name)) != _normalised(right.get(name))]


def authorise_force(*, request: CopyRequest, inconsistent_elements: list[str]) -> CopyRequest:
    """The request with force=True if the policy allows it; ForceRefused otherwise."""
    inconsistent = ", ".join(inconsistent_elements) or "unnamed elements"
    _enforce(request, f" (copy needs force for inconsistent {inconsistent})")
    metrics.add_metric(name="ForcesAuthorised", unit=MetricUnit.Count, value=1)
    logger.warning(
        "Force authorised",
        extra={
            "forcePolicy": load_settings().force_policy.value,
            "inconsistentElements": inconsistent_elements,
            "destinationImageSetId": request.destination_image_set_id,
        },
    )
    return request.model_copy(update={"force": True})


def ensure_force_allowed(request: CopyRequest) -> None:
    """Every forced CopyImageSet passes the policy, including force asked for from the console."""
    if request.force:
        _enforce(request, " (force was asked for)")


def _enforce(request: CopyRequest, context: str) -> None:
    policy = load_settings().force_policy
    if policy is ForcePolicy.NEVER:
        _refuse(f"forcePolicy 'never' forbids forcing a copy{context}")
    if policy is ForcePolicy.SAME_PATIENT and request.destination_image_set_id:
        source = healthimaging.get_metadata(request.datastore_id, request.source_image_set_id)
        destination = healthimaging.get_metadata(request.datastore_id, request.destination_image_set_id)
        differing = differing_identity_elements(source, destination)
        if differing:
            _refuse(f"forcePolicy 'same-patient': source and destination differ in {', '.join(differing)}{context}")


def _refuse(reason: str) -> None:
    metrics.add_metric(name="ForceRefusals", unit=MetricUnit.Count, value=1)
    logger.warning("Force refused", extra={"reason": reason})
    raise ForceRefused(reason)
