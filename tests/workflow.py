"""Helpers for tests that run the synthesized state machine locally."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from captured_output import CAPTURED_OUTPUT

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import LocalPipeline, WorkflowDefinition, synthesize

DS = seed.DATASTORE_ID


@dataclass
class Study:
    primary: str
    consistent: str
    inconsistent: str
    other_patient: str


def seed_study(emulator: HealthImagingEmulator) -> Study:
    emulator.create_datastore(DS)
    return Study(
        primary=emulator.seed_image_set(DS, seed.image_set_metadata(patient_number=1, study=1, series=[1, 2])),
        consistent=emulator.seed_image_set(
            DS, seed.image_set_metadata(patient_number=1, study=1, series=[3]), is_primary=False
        ),
        inconsistent=emulator.seed_image_set(
            DS,
            seed.image_set_metadata(patient_number=1, study=1, series=[4], study_description="SYNTHETIC MR"),
            is_primary=False,
        ),
        other_patient=emulator.seed_image_set(
            DS,
            seed.image_set_metadata(patient_number=1, study=1, series=[5], name_suffix="^MISFILED"),
            is_primary=False,
        ),
    )


@cache
def workflow(**context: object) -> WorkflowDefinition:
    """Synthesized once per distinct context for the whole session (synth takes seconds)."""
    return WorkflowDefinition.from_template(synthesize({"datastoreId": DS, **context}))


@contextmanager
def local_pipeline(
    emulator: HealthImagingEmulator | None = None, clock: VirtualClock | None = None, **context: object
) -> Iterator[LocalPipeline]:
    clock = clock or VirtualClock()
    emulator = emulator or HealthImagingEmulator(clock=clock.now)
    with LocalPipeline(workflow(**context), emulator, clock) as pipeline:
        try:
            yield pipeline
        finally:
            CAPTURED_OUTPUT.append(pipeline.logs.getvalue())  # for the PHI check
