"""Synthetic, clearly fake imaging data: no real patient is in here.

Every value that would be PHI in real life starts with SYNTHETIC or FAKE so that a
leak test can search all output for it.

HealthImaging's image sets resemble DICOM series: `series_image_set_metadata` builds one
such image set (one series, chosen instances), `image_set_metadata` one holding several
series. UIDs come from `study_uid`, `series_uid` and `instance_uid`. At realistic sizes (the
metadata limit is 50 MB of JSON): `ct_image_set_metadata` (CT slices of ~610 bytes of JSON each:
90,000 make 55 MB) and `slide_image_set_metadata` (a whole-slide image: one instance, ~200 bytes
of JSON a frame).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

DATASTORE_ID = "0123456789abcdef0123456789abcdef"
UID_ROOT = "2.25.999999"


def patient(number: int, *, name_suffix: str = "") -> dict[str, str]:
    return {
        "PatientName": f"SYNTHETIC^PATIENT^{number:04d}{name_suffix}",
        "PatientID": f"FAKE-MRN-{number:06d}",
        "PatientBirthDate": f"19{50 + number % 50:02d}0101",
        "PatientSex": "O",
    }


def study_uid(patient_number: int, study: int) -> str:
    return f"{UID_ROOT}.{patient_number}.{study}"


def series_uid(patient_number: int, study: int, series: int) -> str:
    return f"{study_uid(patient_number, study)}.{series}"


def instance_uid(patient_number: int, study: int, series: int, instance: int) -> str:
    return f"{series_uid(patient_number, study, series)}.{instance}"


def series_image_set_metadata(
    *,
    patient_number: int,
    study: int,
    series: int,
    instances: Iterable[int] = (1, 2),
    study_description: str = "SYNTHETIC CT CHEST",
    name_suffix: str = "",
) -> dict[str, Any]:
    """An image set as HealthImaging makes them: one DICOM series ("image sets resemble a DICOM Series").

    Several image sets of one series (a later import, or conflicting data kept as non-primary)
    hold different `instances` of it.
    """
    return _document(patient_number, study, {series: instances}, study_description, name_suffix)


def ct_image_set_metadata(
    *,
    patient_number: int,
    study: int,
    series: int,
    instances: Iterable[int],
    study_description: str = "SYNTHETIC CT CHEST",
    name_suffix: str = "",
) -> dict[str, Any]:
    """A CT series image set whose instances carry what real slices do (position, orientation,
    window, one frame with its checksums): ~610 bytes of JSON each."""
    return _document(patient_number, study, {series: instances}, study_description, name_suffix, instance=_ct_instance)


def slide_image_set_metadata(
    *,
    patient_number: int,
    study: int,
    series: int,
    frames: int,
    instance: int = 1,
    study_description: str = "SYNTHETIC CT CHEST",
    name_suffix: str = "",
) -> dict[str, Any]:
    """A whole-slide image: one instance (`instance`) of `frames` tiles, ~200 bytes of JSON each."""
    return _document(
        patient_number,
        study,
        {series: (instance,)},
        study_description,
        name_suffix,
        instance=lambda p, st, se, i: _slide_instance(p, st, se, i, frames),
        modality="SM",
    )


def image_set_metadata(
    *,
    patient_number: int,
    study: int,
    series: list[int],
    instances_per_series: int = 2,
    study_description: str = "SYNTHETIC CT CHEST",
    name_suffix: str = "",
) -> dict[str, Any]:
    """An image set holding several series, instances 1..instances_per_series of each."""
    instances = range(1, instances_per_series + 1)
    return _document(patient_number, study, dict.fromkeys(series, instances), study_description, name_suffix)


InstanceBuilder = Callable[[int, int, int, int], dict[str, Any]]  # (patient, study, series, instance) -> instance


def _small_instance(patient_number: int, study: int, series: int, instance: int) -> dict[str, Any]:
    return {
        "DICOM": {
            "SOPInstanceUID": instance_uid(patient_number, study, series, instance),
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
        },
        "ImageFrames": [{"ID": f"{series:016x}{instance:016x}", "FrameSizeInBytes": 524288}],
    }


def _ct_instance(patient_number: int, study: int, series: int, instance: int) -> dict[str, Any]:
    position = round(-0.625 * instance, 3)
    return {
        "DICOM": {
            "SOPInstanceUID": instance_uid(patient_number, study, series, instance),
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
            "InstanceNumber": instance,
            "ImagePositionPatient": [-250.0, -250.0, position],
            "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
            "SliceLocation": position,
            "WindowCenter": 40,
            "WindowWidth": 400,
            "RescaleIntercept": -1024,
            "RescaleSlope": 1,
        },
        "StoredTransferSyntaxUID": "1.2.840.10008.1.2.4.202",
        "ImageFrames": [
            {
                "ID": f"{series:016x}{instance:016x}",
                "PixelDataChecksumFromBaseToFullResolution": [
                    {"Width": 512, "Height": 512, "Checksum": instance * 2654435761 % 2**32}
                ],
                "MinPixelValue": 0,
                "MaxPixelValue": 4095,
                "FrameSizeInBytes": 524288,
            }
        ],
    }


def _slide_instance(patient_number: int, study: int, series: int, instance: int, frames: int) -> dict[str, Any]:
    return {
        "DICOM": {
            "SOPInstanceUID": instance_uid(patient_number, study, series, instance),
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.77.1.6",  # VL Whole Slide Microscopy Image
            "InstanceNumber": instance,
            "NumberOfFrames": frames,
            "TotalPixelMatrixColumns": 256 * 400,
            "TotalPixelMatrixRows": 256 * (frames // 400 + 1),
        },
        "StoredTransferSyntaxUID": "1.2.840.10008.1.2.4.202",
        "ImageFrames": [
            {
                "ID": f"{instance:016x}{frame:016x}",
                "PixelDataChecksumFromBaseToFullResolution": [
                    {"Width": 256, "Height": 256, "Checksum": frame * 2654435761 % 2**32}
                ],
                "MinPixelValue": 0,
                "MaxPixelValue": 255,
                "FrameSizeInBytes": 196608,
            }
            for frame in range(1, frames + 1)
        ],
    }


def _document(
    patient_number: int,
    study: int,
    instances_by_series: dict[int, Iterable[int]],
    study_description: str,
    name_suffix: str,
    *,
    instance: InstanceBuilder = _small_instance,
    modality: str = "CT",
) -> dict[str, Any]:
    return {
        "Patient": {"DICOM": patient(patient_number, name_suffix=name_suffix)},
        "Study": {
            "DICOM": {
                "StudyInstanceUID": study_uid(patient_number, study),
                "StudyID": f"FAKE-STUDY-{study}",
                "AccessionNumber": f"FAKE-ACC-{patient_number}{study}",
                "StudyDescription": study_description,
                "StudyDate": "20260101",
            },
            "Series": {
                series_uid(patient_number, study, s): {
                    "DICOM": {
                        "SeriesInstanceUID": series_uid(patient_number, study, s),
                        "Modality": modality,
                        "SeriesNumber": s,
                    },
                    "Instances": {
                        instance_uid(patient_number, study, s, i): instance(patient_number, study, s, i)
                        for i in instances
                    },
                }
                for s, instances in instances_by_series.items()
            },
        },
    }


def image_set_created_event(
    datastore_id: str,
    image_set_id: str,
    *,
    version: str = "1",
    is_primary: bool = True,
    id_spelling: str = "imageSetId",
    event_id: str = "1",
) -> dict[str, Any]:
    """A HealthImaging "Image Set Created" EventBridge event (ids only, as the service sends)."""
    return {
        "version": "0",
        "id": f"00000000-0000-0000-0000-{int(event_id):012d}",
        "detail-type": "Image Set Created",
        "source": "aws.medical-imaging",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [
            f"arn:aws:medical-imaging:us-east-1:123456789012:datastore/{datastore_id}/imageset/{image_set_id}"
        ],
        "detail": {
            "imagingVersion": "1.0",
            "datastoreId": datastore_id,
            id_spelling: image_set_id,
            "imageSetVersion": version,
            "imageSetState": "ACTIVE",
            "imageSetWorkflowStatus": "CREATED",
            "isPrimary": is_primary,
        },
    }
