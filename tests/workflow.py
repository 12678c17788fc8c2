"""Helpers for tests that run the synthesized state machine locally."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from conftest import CAPTURED_OUTPUT, Study, seed_study  # noqa: F401 (re-exported for tests)

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import LocalPipeline, WorkflowDefinition, synthesize

DS = seed.DATASTORE_ID


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
