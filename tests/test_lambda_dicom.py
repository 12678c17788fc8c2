"""DICOM comparisons behind force and inconsistency decisions: names out, never values. Documents are
read the way the function reads them (copier.metadata's stream reader)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from copier import dicom, metadata
from offline import seed


def summary(document: dict[str, Any]) -> metadata.MetadataSummary:
    return metadata.summarise(io.BytesIO(json.dumps(document).encode()), gzipped=False, instances=True)


def patient(**elements: Any) -> metadata.MetadataSummary:
    base: dict[str, Any] = {
        "PatientID": "FAKE-MRN-1",
        "PatientName": "SYNTHETIC^PATIENT",
        "PatientBirthDate": "19700101",
    }
    base.update(elements)
    return summary({"Patient": {"DICOM": {k: v for k, v in base.items() if v is not None}}})


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("SYNTHETIC^PATIENT", "SYNTHETIC^PATIENT^^^"),  # trailing empty components
        ("SYNTHETIC^PATIENT", "SYNTHETIC^PATIENT=="),  # trailing empty component groups
        ("SYNTHETIC^PATIENT ", "SYNTHETIC ^PATIENT"),  # padding spaces
        ("Synthetic^Patient", "SYNTHETIC^PATIENT"),  # case
        ({"Alphabetic": "SYNTHETIC^PATIENT"}, "SYNTHETIC^PATIENT"),  # DICOM JSON form
    ],
)
def test_person_names_equal_by_dicom_rules_are_the_same_patient(left: Any, right: Any) -> None:
    assert dicom.identity_differences(patient(PatientName=left), patient(PatientName=right)) == []


@pytest.mark.parametrize(
    ("left", "right"),
    [("SYNTHETIC^PATIENT", "SYNTHETIC^PATIENTA"), ("SYNTHETIC^PATIENT", "SYNTHETIC^^PATIENT")],
)
def test_different_person_names_are_named(left: str, right: str) -> None:
    assert dicom.identity_differences(patient(PatientName=left), patient(PatientName=right)) == ["PatientName"]


def test_dates_compare_as_dates_including_the_legacy_form() -> None:
    assert dicom.identity_differences(patient(PatientBirthDate="1970.01.01"), patient()) == []
    assert dicom.identity_differences(patient(PatientBirthDate="19700102"), patient()) == ["PatientBirthDate"]


def test_ids_ignore_padding_but_not_case() -> None:
    assert dicom.identity_differences(patient(PatientID=" FAKE-MRN-1 "), patient()) == []
    assert dicom.identity_differences(patient(PatientID="fake-mrn-1"), patient()) == ["PatientID"]


def test_an_element_on_one_side_only_differs_and_empty_on_both_agrees() -> None:
    assert dicom.identity_differences(patient(IssuerOfPatientID="FAKE-ISSUER"), patient()) == ["IssuerOfPatientID"]
    assert dicom.identity_differences(patient(IssuerOfPatientID=""), patient()) == []


@pytest.mark.parametrize("side", ["left", "right"])
def test_identity_needs_a_patient_id_on_both_sides(side: str) -> None:
    missing = patient(PatientID=None)
    pair = (missing, patient()) if side == "left" else (patient(), missing)
    assert dicom.identity_differences(*pair) == ["PatientID"]


def test_inconsistent_elements_cover_patient_study_and_the_copied_series_only() -> None:
    source = seed.image_set_metadata(patient_number=1, study=1, series=[1, 2])
    destination = seed.image_set_metadata(patient_number=1, study=1, series=[1, 2], study_description="SYNTHETIC MR")
    uid_1, uid_2 = sorted(source["Study"]["Series"])
    destination["Study"]["Series"][uid_2]["DICOM"]["Modality"] = "MR"  # not copied below
    source["Study"]["DICOM"]["StudyDate"] = "20250101"
    destination["Study"]["DICOM"].pop("StudyDate")  # present on one side only: the copy adds it

    pair = summary(source), summary(destination)
    assert dicom.inconsistent_elements(*pair, [uid_1]) == ["StudyDescription"]
    assert dicom.inconsistent_elements(*pair, [uid_1, uid_2]) == ["Modality", "StudyDescription"]


def test_selection_follows_copiable_attributes() -> None:
    source = seed.image_set_metadata(patient_number=1, study=1, series=[1, 2], instances_per_series=2)
    uid_1, uid_2 = sorted(source["Study"]["Series"])
    one = sorted(source["Study"]["Series"][uid_2]["Instances"])[0]
    attributes = f'{{"Study":{{"Series":{{"{uid_1}":{{}},"{uid_2}":{{"Instances":{{"{one}":{{}}}}}}}}}}}}'

    chosen = dicom.selection(summary(source), attributes)

    assert chosen == {uid_1: set(source["Study"]["Series"][uid_1]["Instances"]), uid_2: {one}}
    assert dicom.selection(summary(source), None) == {
        uid: set(series["Instances"]) for uid, series in source["Study"]["Series"].items()
    }
