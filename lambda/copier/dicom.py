"""What two HealthImaging metadata documents say about each other. Returns element NAMES only.

- `inconsistent_elements`: the Patient, Study and Series level elements whose values differ
  between what a copy takes from its source and its destination: what CopyImageSet needs
  `force` for. An element present on one side only is not an inconsistency (the copy adds it).
- `identity_differences`: the patient identity elements on which source and destination do not
  agree, by DICOM's rules (PS3.5 6.2): PN compared component by component with trailing spaces
  and trailing empty components or groups dropped, case-insensitively; DA as a date (the legacy
  YYYY.MM.DD form too); LO with leading and trailing spaces dropped. An element empty on both
  sides agrees; present on one side only, it does not: identity must be shown, not assumed.
  PatientID must be present on both sides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

PATIENT_IDENTITY_ELEMENTS = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")
_LEGACY_DATE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")


def _elements(document: dict[str, Any], level: str) -> dict[str, Any]:
    elements = document.get(level, {}).get("DICOM", {})
    return elements if isinstance(elements, dict) else {}


def _series(document: dict[str, Any]) -> dict[str, Any]:
    series = document.get("Study", {}).get("Series", {})
    return series if isinstance(series, dict) else {}


def series_uids(document: dict[str, Any]) -> list[str]:
    return sorted(_series(document))


def study_uid(document: dict[str, Any]) -> str | None:
    value = _elements(document, "Study").get("StudyInstanceUID")
    return value if isinstance(value, str) and value else None


def selection(document: dict[str, Any], copiable_attributes: str | None) -> dict[str, set[str]]:
    """Series UID -> SOPInstanceUIDs a copy takes from this source (all, or the subset named)."""
    available = {uid: set(series.get("Instances", {})) for uid, series in _series(document).items()}
    if copiable_attributes is None:
        return available
    wanted = json.loads(copiable_attributes).get("Study", {}).get("Series", {})
    chosen: dict[str, set[str]] = {}
    for uid, spec in wanted.items():
        instances = (spec or {}).get("Instances") or {}
        chosen[uid] = set(instances) if instances else available.get(uid, set())
    return chosen


def instances(document: dict[str, Any]) -> set[str]:
    return {sop for series in _series(document).values() for sop in series.get("Instances", {})}


def _instance_elements(document: dict[str, Any]) -> dict[str, Any]:
    """SOPInstanceUID -> the instance's own DICOM elements."""
    return {
        sop: instance.get("DICOM", {})
        for series in _series(document).values()
        for sop, instance in series.get("Instances", {}).items()
    }


def holds_instances(destination: dict[str, Any], source: dict[str, Any], chosen: dict[str, set[str]]) -> bool:
    """The destination holds every chosen instance of the source, each with the source's own elements
    (a re-import of the same instances with other values does not count)."""
    held, own = _instance_elements(destination), _instance_elements(source)
    return all(sop in held and held[sop] == own.get(sop) for sops in chosen.values() for sop in sops)


def inconsistent_elements(source: dict[str, Any], destination: dict[str, Any], series: list[str]) -> list[str]:
    """Names of Patient/Study elements, and Series elements of the copied series both hold, that differ."""
    names: set[str] = set()
    pairs = [(_elements(source, level), _elements(destination, level)) for level in ("Patient", "Study")]
    for uid in set(series) & set(_series(destination)):
        pairs.append((_series(source).get(uid, {}).get("DICOM", {}), _series(destination)[uid].get("DICOM", {})))
    for left, right in pairs:
        names.update(name for name in set(left) & set(right) if left[name] != right[name])
    return sorted(names)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _person_name(value: Any) -> str:
    if isinstance(value, dict):  # DICOM JSON form: {"Alphabetic": ..., "Ideographic": ..., "Phonetic": ...}
        value = "=".join(_text(value.get(group)) for group in ("Alphabetic", "Ideographic", "Phonetic"))
    groups = []
    for group in _text(value).split("="):
        components = [component.strip() for component in group.split("^")]
        while components and not components[-1]:
            components.pop()
        groups.append("^".join(components).upper())
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def _date(value: Any) -> str:
    text = _text(value).strip()
    legacy = _LEGACY_DATE.match(text)
    return "".join(legacy.groups()) if legacy else text


def _long_string(value: Any) -> str:
    return _text(value).strip()


_NORMALISE: dict[str, Callable[[Any], str]] = {
    "PatientID": _long_string,
    "IssuerOfPatientID": _long_string,
    "PatientName": _person_name,
    "PatientBirthDate": _date,
}


def identity_differences(source: dict[str, Any], destination: dict[str, Any]) -> list[str]:
    """Names of patient identity elements on which the two documents do not agree."""
    left, right = _elements(source, "Patient"), _elements(destination, "Patient")
    values = {name: (normalise(left.get(name)), normalise(right.get(name))) for name, normalise in _NORMALISE.items()}
    if not all(values["PatientID"]):
        return ["PatientID"]  # identity cannot be established without it
    return [name for name in PATIENT_IDENTITY_ELEMENTS if values[name][0] != values[name][1]]
