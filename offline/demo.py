"""The product's main job, offline: `make demo` (or `python -m offline.demo`).

Three copies through the synthesized state machine, the real handler, moto's DynamoDB
and the HealthImaging emulator, on a virtual clock. Each event takes the deployed way: the
admission queue's consumer writes it into the copy journal's backlog, the dispatcher's next run
starts its execution at the quota's pace.
1. snapshot: an "Image Set Created" event arrives; the new image set is copied.
2. merge-into-primary: a non-primary image set is merged into the primary of its series,
   which another writer's copy has locked: ConflictException, retry with backoff, COPIED.
3. merge-into-primary with inconsistent Study metadata: our version ends COPY_FAILED, the
   metadata differ in StudyDescription, the same-patient force policy allows force, the
   forced copy is COPIED.
Exits non-zero unless every scenario ends COPIED.
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import ExecutionRecord, LocalPipeline
from offline.template import WorkflowDefinition, synthesize


@dataclass
class Outcome:
    scenario: str
    policy: str
    record: ExecutionRecord
    virtual_seconds: float


def console_lines(record: ExecutionRecord) -> list[str]:
    """The execution's steps as the console lists them; repeated poll cycles folded into one line."""
    lines: list[str] = []
    for event in record.events:
        if event["type"].endswith("StateEntered"):
            lines.append(event["stateEnteredEventDetails"]["name"])
        details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails")
        if details:
            lines.append(f"  ! {details.get('error')} (retried or caught)")
    folded: list[str] = []
    index = 0
    while index < len(lines):
        for size in (3, 2, 1):
            cycle = lines[index : index + size]
            repeats = 1
            while lines[index + repeats * size : index + (repeats + 1) * size] == cycle:
                repeats += 1
            if repeats > 1 and len(cycle) == size:
                folded.append(" -> ".join(cycle) + f"   (x{repeats})")
                index += repeats * size
                break
        else:
            folded.append(lines[index])
            index += 1
    return folded


def show(title: str, record: ExecutionRecord, virtual_seconds: float) -> None:
    print(f"\n== {title}")
    for line in console_lines(record):
        print(f"   {line}")
    print(f"   {record.status} after {virtual_seconds:.0f} s of virtual time, {record.transitions} states entered")
    if record.output:
        for key, value in record.output.items():
            print(f"      {key}: {value}")
    if record.error:
        print(f"      error: {record.error}\n      cause: {record.cause}")


def run_scenario(
    pipeline: LocalPipeline, clock: VirtualClock, title: str, event: dict[str, object]
) -> tuple[ExecutionRecord, float]:
    started = clock.now()
    record = pipeline.run_event(event)
    elapsed = clock.now() - started
    show(title, record, elapsed)
    return record, elapsed


def main() -> int:
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # its interpreter logs every caught error; we print them
    print("Synthesizing the CDK app (copyPolicy snapshot and merge-into-primary)...")
    contexts = [
        {"datastoreId": seed.DATASTORE_ID},
        {"datastoreId": seed.DATASTORE_ID, "copyPolicy": "merge-into-primary"},
    ]
    with ThreadPoolExecutor() as synths:  # each synth is app.py's own process: all at once
        snapshot_workflow, merge_workflow = map(WorkflowDefinition.from_template, synths.map(synthesize, contexts))

    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now)
    datastore = emulator.create_datastore(seed.DATASTORE_ID)

    def series_part(patient: int, study: int, instances: tuple[int, ...], **differences: str) -> str:
        document = seed.series_image_set_metadata(
            patient_number=patient, study=study, series=1, instances=instances, **differences
        )
        return emulator.seed_image_set(datastore, document)  # the first of a series is its primary

    imported = series_part(1, 1, (1, 2))
    primary = series_part(2, 5, (1, 2))
    other = series_part(2, 5, (9, 10))
    consistent = series_part(2, 5, (3, 4))
    inconsistent = series_part(2, 5, (5, 6), study_description="SYNTHETIC CT ABDOMEN")

    outcomes: list[Outcome] = []
    with LocalPipeline(snapshot_workflow, emulator, clock) as pipeline:
        record, seconds = run_scenario(
            pipeline, clock, "1. Import event -> snapshot copy", seed.image_set_created_event(datastore, imported)
        )
        outcomes.append(Outcome("import -> snapshot", "snapshot", record, seconds))

    with LocalPipeline(merge_workflow, emulator, clock) as pipeline:
        # Another writer's copy into the primary is running: the pipeline meets a locked destination.
        emulator.schedule_copy(clock.now(), other, primary)
        record, seconds = run_scenario(
            pipeline,
            clock,
            "2. Merge into the primary (locked by another copy)",
            seed.image_set_created_event(datastore, consistent, is_primary=False, event_id="2"),
        )
        outcomes.append(Outcome("merge, destination locked", "merge-into-primary", record, seconds))
        record, seconds = run_scenario(
            pipeline,
            clock,
            "3. Merge with inconsistent Study metadata -> force branch",
            seed.image_set_created_event(datastore, inconsistent, is_primary=False, event_id="3"),
        )
        outcomes.append(Outcome("merge, inconsistent -> forced", "merge-into-primary", record, seconds))

    print("\nSummary")
    header = (
        f"{'scenario':32} {'policy':19} {'status':8} {'destination':34} {'ver':>3} {'forced':6} "
        f"{'failed tries':>12} {'states':>6} {'virtual s':>9}"
    )
    print(header)
    print("-" * len(header))
    for outcome in outcomes:
        output = outcome.record.output or {}
        status = output.get("status", outcome.record.status)
        print(
            f"{outcome.scenario:32} {outcome.policy:19} {status:8} {output.get('destinationImageSetId', '-'):34} "
            f"{output.get('destinationVersionId', '-'):>3} {output.get('forced', '-')!s:6} "
            f"{len(outcome.record.task_failures()):>12} {outcome.record.transitions:>6} {outcome.virtual_seconds:>9.0f}"
        )
    copy_calls = emulator.copy_image_set_calls()
    print(
        f"\nThe pipeline's CopyImageSet calls: {len(copy_calls)} (accepted {copy_calls.count(200)}, "
        f"throttled {copy_calls.count(429)}); the other writer's copy is not among them"
    )
    every_copied = all((o.record.output or {}).get("status") == "COPIED" for o in outcomes)
    print("Every scenario COPIED." if every_copied else "NOT every scenario was COPIED.")
    return 0 if every_copied else 1


if __name__ == "__main__":
    sys.exit(main())
