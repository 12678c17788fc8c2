"""No PHI in any output: logs, metrics, errors, execution outputs.

Runs last (file order): reads everything the suite captured (tests/conftest.py) and, so that
it proves something when run alone too, runs copies through every branch and reads those.
Every PHI-like value in the seed data contains SYNTHETIC or FAKE-, or is a seeded birth date.
"""

from __future__ import annotations

import json

import pytest
from captured_output import CAPTURED_OUTPUT
from workflow import DS, local_pipeline, seed_study

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator

pytestmark = pytest.mark.slow
BIRTH_DATES = {seed.patient(n)["PatientBirthDate"] for n in range(100)}


def phi_in(text: str) -> list[str]:
    found = [marker for marker in ("SYNTHETIC", "FAKE-", "MISFILED") if marker in text]
    return found + [date for date in BIRTH_DATES if date in text]


def test_nothing_the_pipeline_writes_contains_patient_data() -> None:
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now)
    study = seed_study(emulator)
    outputs = []
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        for source in (study.consistent, study.inconsistent, study.other_patient):
            record = pipeline.run(seed.image_set_created_event(DS, source, is_primary=False))
            outputs.append(json.dumps([record.output, record.error, record.cause, record.events], default=str))
        logs = pipeline.logs.getvalue()
    assert "Force refused" in logs and "Forced copy started" in logs  # the branches that handle PHI ran
    assert phi_in(logs) == []
    assert phi_in("\n".join(outputs)) == []


def test_nothing_the_suite_captured_contains_patient_data() -> None:
    leaks = [phi_in(text) for text in CAPTURED_OUTPUT]
    assert [leak for leak in leaks if leak] == []
