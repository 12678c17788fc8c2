"""What copies and updates do to an image set's metadata document: the series it holds, a new image set's
empty document, the Patient/Study/Series level elements that make a copy inconsistent (and the message its
COPY_FAILED version carries), a copy merged into its destination (the destination keeping its own elements,
forced or not), and UpdateImageSetMetadata's new Patient / Study levels."""

from __future__ import annotations

import copy as copying
from typing import Any

PATIENT_AND_STUDY_LEVELS = ("Patient", "Study")


def updated_metadata(document: dict[str, Any], updatable_attributes: dict[str, Any]) -> dict[str, Any]:
    """The document after UpdateImageSetMetadata's updatableAttributes (Patient / Study level elements)."""
    updated = copying.deepcopy(document)
    for level in PATIENT_AND_STUDY_LEVELS:
        changes = updatable_attributes.get(level, {}).get("DICOM", {})
        if changes:
            updated.setdefault(level, {}).setdefault("DICOM", {}).update(changes)
    return updated


def series_keys(document: dict[str, Any]) -> set[tuple[str, str]]:
    """The (StudyInstanceUID, SeriesInstanceUID) pairs an image set document holds."""
    study = document.get("Study", {})
    study_uid = study.get("DICOM", {}).get("StudyInstanceUID", "")
    return {(study_uid, series_uid) for series_uid in study.get("Series", {})}


def without_series(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its Patient and Study levels but no series: an image set nothing landed in yet."""
    empty = copying.deepcopy({key: value for key, value in document.items() if key != "Study"})
    empty["Study"] = {"DICOM": copying.deepcopy(document.get("Study", {}).get("DICOM", {})), "Series": {}}
    return empty


def inconsistent_elements(source: dict[str, Any], destination: dict[str, Any]) -> list[str]:
    """Names of Patient/Study/Series level elements whose values differ."""
    names: set[str] = set()
    for level in PATIENT_AND_STUDY_LEVELS:
        left = source.get(level, {}).get("DICOM", {})
        right = destination.get(level, {}).get("DICOM", {})
        names.update(k for k in set(left) & set(right) if left[k] != right[k])
    left_series = source.get("Study", {}).get("Series", {})
    right_series = destination.get("Study", {}).get("Series", {})
    for uid in set(left_series) & set(right_series):
        left, right = left_series[uid].get("DICOM", {}), right_series[uid].get("DICOM", {})
        names.update(k for k in set(left) & set(right) if left[k] != right[k])
    return sorted(names)


def inconsistency_message(names: list[str]) -> str:
    return f"Inconsistent metadata between source and destination: {', '.join(names)}. Use force to copy"


def merge_metadata(destination: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """Destination metadata after a copy: the source's instances and new series added. The
    destination's Patient, Study and Series level elements stay as they are, forced or not
    (AWS guide, "Copying an image set": with force they "remain unchanged")."""
    merged = copying.deepcopy(destination)
    series = merged.setdefault("Study", {}).setdefault("Series", {})
    for uid, value in source.get("Study", {}).get("Series", {}).items():
        if uid in series:
            series[uid].setdefault("Instances", {}).update(copying.deepcopy(value.get("Instances", {})))
        else:
            series[uid] = copying.deepcopy(value)
    return merged
