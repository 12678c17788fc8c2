"""Helpers for tests that run the synthesized state machine locally."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from captured_output import CAPTURED_OUTPUT

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import REGION, LocalPipeline, _task_client
from offline.template import WorkflowDefinition

DS = seed.DATASTORE_ID


@dataclass
class Study:
    """One series of one study, as an import leaves it: a primary image set and, beside it,
    non-primary image sets of the same series holding other instances."""

    primary: str
    consistent: str  # same Patient/Study/Series metadata: merges without force
    inconsistent: str  # another StudyDescription: needs force (same patient)
    other_patient: str  # another PatientName: force refused under same-patient


# (part, differences) -> the document of that part of the series: parts 0-3 are primary, consistent,
# inconsistent, other_patient, each holding other instances of the series.
SeriesPart = Callable[[int, dict[str, str]], dict[str, Any]]


def small_parts(part: int, differences: dict[str, str]) -> dict[str, Any]:
    instances = (2 * part + 1, 2 * part + 2)
    return seed.series_image_set_metadata(patient_number=1, study=1, series=1, instances=instances, **differences)


def seed_study(emulator: HealthImagingEmulator, series_part: SeriesPart = small_parts) -> Study:
    emulator.create_datastore(DS)

    def part(number: int, **differences: str) -> str:
        return emulator.seed_image_set(DS, series_part(number, differences))

    return Study(
        primary=part(0),
        consistent=part(1),
        inconsistent=part(2, study_description="SYNTHETIC MR"),
        other_patient=part(3, name_suffix="^MISFILED"),
    )


@cache
def workflow(**context: object) -> WorkflowDefinition:
    """The state machines of the app synthesized with these settings: in process, once per distinct context for
    the whole session (synth takes seconds), shared with the CDK assertion tests (stack_app.py)."""
    from stack_app import synthesize  # the CDK, only when a test runs the workflow (not on the Lambda runtime's venv)

    return WorkflowDefinition.from_template(synthesize(**context)[1].to_json())


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


@contextmanager
def before_each_task_call(operation: str, hook: Callable[..., None]) -> Iterator[None]:
    """`hook(params=...)` before each call of DynamoDB's `operation` by the state machine's tasks (AwaitCopy's
    write: TransactWriteItems, or the previous definition's UpdateItem): to come first, or to refuse it."""
    client, event = _task_client(REGION, "dynamodb"), f"provide-client-params.dynamodb.{operation}"
    client.meta.events.register(event, hook)
    try:
        yield
    finally:
        client.meta.events.unregister(event, hook)
