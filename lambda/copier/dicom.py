"""What two HealthImaging metadata documents say about each other, from their summaries
(metadata.py). Returns element NAMES only.

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
from collections.abc import Callable, Mapping
from typing import Any

from copier.metadata import MetadataSummary

PATIENT_IDENTITY_ELEMENTS = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")
_LEGACY_DATE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")


def series_uids(summary: MetadataSummary) -> list[str]:
    return sorted(summary.series)


def study_uid(summary: MetadataSummary) -> str | None:
    value = summary.study.get("StudyInstanceUID")
    return value if isinstance(value, str) and value else None


def _wanted_series(copiable_attributes: str) -> dict[str, Any]:
    wanted: dict[str, Any] = json.loads(copiable_attributes).get("Study", {}).get("Series", {})
    return wanted


def copied_series(summary: MetadataSummary, copiable_attributes: str | None) -> list[str]:
    """Series UIDs a copy takes from this source (all, or those named)."""
    return list(summary.series if copiable_attributes is None else _wanted_series(copiable_attributes))


def selection(summary: MetadataSummary, copiable_attributes: str | None) -> dict[str, frozenset[str]]:
    """Series UID -> SOPInstanceUIDs a copy takes from this source (all, or the subset named).
    The summary must have been read with its instances."""
    available = {uid: frozenset(series.instance_digests()) for uid, series in summary.series.items()}
    if copiable_attributes is None:
        return available
    chosen: dict[str, frozenset[str]] = {}
    for uid, spec in _wanted_series(copiable_attributes).items():
        instances = (spec or {}).get("Instances") or {}
        chosen[uid] = frozenset(instances) if instances else available.get(uid, frozenset())
    return chosen


def chosen_instances(chosen: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """Every SOPInstanceUID of a selection: the instances whose elements `holds_instances` compares."""
    return frozenset().union(*chosen.values())


def _instance_digests(summary: MetadataSummary) -> dict[str, bytes | None]:
    """SOPInstanceUID -> digest of the instance's own elements, over every series."""
    return {sop: digest for series in summary.series.values() for sop, digest in series.instance_digests().items()}


def holds_instances(
    destination: MetadataSummary, source: MetadataSummary, chosen: Mapping[str, frozenset[str]]
) -> bool:
    """The destination holds every chosen instance of the source, each with the source's own elements
    (a re-import of the same instances with other values does not count). Both summaries must have
    been read with the chosen instances' digests."""
    held, own = _instance_digests(destination), _instance_digests(source)
    for sop in chosen_instances(chosen):
        if sop not in held:
            return False
        if held[sop] is None or (sop in own and own[sop] is None):
            raise LookupError(f"instance {sop} was read without its digest")
        if held[sop] != own.get(sop):
            return False
    return True


def inconsistent_elements(source: MetadataSummary, destination: MetadataSummary, series: list[str]) -> list[str]:
    """Names of Patient/Study elements, and Series elements of the copied series both hold, that differ."""
    names: set[str] = set()
    pairs = [(source.patient, destination.patient), (source.study, destination.study)]
    for uid in set(series) & set(destination.series):
        held = source.series.get(uid)
        pairs.append((held.elements if held else {}, destination.series[uid].elements))
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


def identity_differences(source: MetadataSummary, destination: MetadataSummary) -> list[str]:
    """Names of patient identity elements on which the two documents do not agree."""
    left, right = source.patient, destination.patient
    values = {name: (normalise(left.get(name)), normalise(right.get(name))) for name, normalise in _NORMALISE.items()}
    if not all(values["PatientID"]):
        return ["PatientID"]  # identity cannot be established without it
    return [name for name in PATIENT_IDENTITY_ELEMENTS if values[name][0] != values[name][1]]
