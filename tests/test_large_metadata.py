"""Image sets at realistic sizes, end to end on the synthesized workflow: the decisions that read metadata
(inconsistency and force, same patient and another; ConfirmCopy into a new and into an existing image set;
a merge into a large primary) come out exactly as they do for small documents.

Each image set of the study is a whole-slide image (one instance of 100,000 frames) or a CT series part
(`METADATA_TEST_CT_INSTANCES` instances each, 10,000 in `make test`, 6 MB of JSON; `make test-scale` runs
the 90,000 of a 55 MB document). The outcome compared: the execution's status, error, the states it went
through, its output, the copies the service accepted, the cause with the image set ids named by role.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import pytest
from workflow import DS, SeriesPart, Study, local_pipeline, seed_study, small_parts

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import ExecutionRecord

pytestmark = pytest.mark.slow
CT_INSTANCES = int(os.environ.get("METADATA_TEST_CT_INSTANCES", "10000"))
SLIDE_FRAMES = 100_000


def slide_parts(part: int, differences: dict[str, str]) -> dict[str, Any]:
    return _large_part("slide", part, tuple(differences.items()))


def ct_parts(part: int, differences: dict[str, str]) -> dict[str, Any]:
    return _large_part("ct", part, tuple(differences.items()))


@cache  # built once for every scenario (seeding copies what it keeps): 100,000 frames take 0.4 s to build
def _large_part(kind: str, part: int, differences: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    if kind == "slide":
        return seed.slide_image_set_metadata(
            patient_number=1, study=1, series=1, instance=part + 1, frames=SLIDE_FRAMES, **dict(differences)
        )
    instances = range(part * CT_INSTANCES + 1, (part + 1) * CT_INSTANCES + 1)
    return seed.ct_image_set_metadata(patient_number=1, study=1, series=1, instances=instances, **dict(differences))


@pytest.fixture(scope="module", autouse=True)
def _release_documents() -> Iterator[None]:
    yield
    _large_part.cache_clear()


KINDS: dict[str, SeriesPart] = {"small": small_parts, "slide": slide_parts, "ct": ct_parts}
Outcome = tuple[Any, ...]


def console(source: str, **fields: object) -> dict[str, object]:
    return {"datastoreId": DS, "sourceImageSetId": source, **fields}


def merge(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> ExecutionRecord:
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        return pipeline.run(seed.image_set_created_event(DS, study.consistent, is_primary=False))


def force_same_patient(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> ExecutionRecord:
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        return pipeline.run(seed.image_set_created_event(DS, study.inconsistent, is_primary=False))


def force_other_patient(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> ExecutionRecord:
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        return pipeline.run(seed.image_set_created_event(DS, study.other_patient, is_primary=False))


def confirm_into_new(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> ExecutionRecord:
    emulator.faults.copy_faults.append("accept-then-500")  # accepted, answered 500: ConfirmCopy finds it
    with local_pipeline(emulator, clock) as pipeline:
        return pipeline.run(console(study.primary))


def confirm_into_existing(emulator: HealthImagingEmulator, clock: VirtualClock, study: Study) -> ExecutionRecord:
    emulator.faults.copy_faults.append("accept-then-timeout")  # accepted, never answered
    with local_pipeline(emulator, clock) as pipeline:
        return pipeline.run(console(study.consistent, destinationImageSetId=study.primary))


Scenario = Callable[[HealthImagingEmulator, VirtualClock, Study], ExecutionRecord]
SCENARIOS: dict[str, Scenario] = {
    "merge-into-a-large-primary": merge,
    "force-same-patient": force_same_patient,
    "force-refused-other-patient": force_other_patient,
    "confirm-into-a-new-image-set": confirm_into_new,
    "confirm-into-an-existing-image-set": confirm_into_existing,
}


def run(scenario: str, kind: str) -> tuple[Outcome, HealthImagingEmulator, Study]:
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now)
    study = seed_study(emulator, KINDS[kind])
    record = SCENARIOS[scenario](emulator, clock, study)
    return outcome(record, emulator, study), emulator, study


def outcome(record: ExecutionRecord, emulator: HealthImagingEmulator, study: Study) -> Outcome:
    roles = {getattr(study, role): role for role in ("primary", "consistent", "inconsistent", "other_patient")}
    new = {copy.destination_id: "new image set" for copy in emulator.accepted if copy.new_destination}
    named = {**roles, **new}

    def by_role(text: str) -> str:
        for image_set_id, role in named.items():
            text = text.replace(image_set_id, role)
        return text

    output = {key: by_role(value) if isinstance(value, str) else value for key, value in (record.output or {}).items()}
    copies = [(by_role(c.source_id), by_role(c.destination_id), c.force, c.outcome) for c in emulator.accepted]
    return record.status, record.error, by_role(record.cause or ""), record.states_entered(), output, copies


@cache
def small_outcome(scenario: str) -> Outcome:
    return run(scenario, "small")[0]


@pytest.mark.parametrize("kind", ["slide", "ct"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_large_documents_decide_as_small_ones_do(scenario: str, kind: str) -> None:
    got, emulator, study = run(scenario, kind)
    assert got == small_outcome(scenario)
    status, error, cause, states, output, copies = got
    # What each scenario must come to, whatever the size.
    if scenario == "merge-into-a-large-primary":
        assert (status, output["status"], output["destinationImageSetId"]) == ("SUCCEEDED", "COPIED", "primary")
        assert emulator.instances(study.primary) == emulator.instances(study.primary, 1) | emulator.instances(
            study.consistent
        )
    elif scenario == "force-same-patient":
        assert (status, output["status"], output["forced"]) == ("SUCCEEDED", "COPIED", True)
        assert "AuthoriseForce" in states and emulator.forced(study.primary)
    elif scenario == "force-refused-other-patient":
        assert (status, error) == ("FAILED", "ForceRefused")
        assert "PatientName" in cause and "MISFILED" not in cause
        assert [force for *_, force, _ in copies] == [False]
    else:
        assert status == "SUCCEEDED" and "ConfirmCopy" in states
        (copy,) = copies  # confirmed, never called again
        assert copy[3] == "COPIED" and output["destinationImageSetId"] == copy[1]
