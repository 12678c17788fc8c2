"""The product's main job, offline: `make demo` (or `python -m offline.demo`).

Every path the product is defined by, through the synthesized state machines (copy and backfill), the real
handler, moto's Step Functions and DynamoDB, and the HealthImaging emulator, on a virtual clock. Events take
the deployed way: the admission queue's consumer writes each into the copy journal's backlog, the
dispatcher starts it at the quota's pace (0.25 CopyImageSet a second, the default quota).

Under copyPolicy snapshot:
1. An import event copied: an "Image Set Created" event; the new image set is copied into a new one.
2. A copy started by hand: the console's input, started by `healthimaging-copy start`'s own code (an execution
   named after its input: starting it again returns the same execution).
3. A backfill: three image sets that existed before, found by the backfill workflow (`healthimaging-copy
   backfill start`'s own code, one study), admitted to the backlog and started by the dispatcher.
4. Throttling absorbed by the pacing: another client takes the account's quota for a minute while four
   imports wait; our calls on their slots are throttled (ThrottlingException, HTTP 429: CopyThrottled), each
   copy takes a new slot, the dispatcher slows the pace, and every copy is COPIED exactly once.
Under copyPolicy merge-into-primary:
5. A retry on conflict: another writer's copy locks the primary at the instant our CopyImageSet is called
   (after StartCopy has read the destination unlocked): ConflictException (HTTP 409), StartCopy's Retry on
   CopyConflict, and our copy is COPIED on the primary's next version, after theirs.
6. The force branch: Study metadata differ; our version ends COPY_FAILED, InconsistentMetadata, the
   same-patient force policy allows force, and the forced copy is COPIED.

Each summary line names its path; beside it, what shows the path was really taken (the emulator's records,
the executions' histories). Exits non-zero unless every path ended as it should.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator, ScheduledCopy
from offline.runner import TABLE, ExecutionRecord, LocalPipeline
from offline.template import WorkflowDefinition, synthesize
from ops.cli import backfill_line, backfill_progress, backfill_start, start

RATE = 0.24  # copyRatePerSecond's default: the default quota, 0.25, less a margin
BACKFILL_ID = "demo-backfill"
Hook = Callable[[dict[str, Any]], None]


@dataclass
class PathTaken:
    """One path through the product: its executions, and the checks that show it was the path taken."""

    name: str
    policy: str
    records: list[ExecutionRecord]
    virtual_seconds: float
    result: str
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


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


def failure_causes(record: ExecutionRecord, error: str) -> list[str]:
    """The causes of the task attempts that failed with `error` (the function's message, as Step Functions has it)."""
    causes = []
    for event in record.events:
        details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails") or {}
        if details.get("error") == error:
            causes.append(str(details.get("cause", "")))
    return causes


def show(title: str, record: ExecutionRecord, virtual_seconds: float) -> None:
    print(f"\n== {title}")
    for line in console_lines(record):
        print(f"   {line}")
    print(f"   {record.status} after {virtual_seconds:.0f} s of virtual time, {record.transitions} states entered")
    for key, value in (record.output or {}).items():
        print(f"      {key}: {value}")
    if record.error:
        print(f"      error: {record.error}\n      cause: {record.cause}")


def show_many(title: str, records: list[ExecutionRecord], virtual_seconds: float) -> None:
    print(f"\n== {title}: {len(records)} executions, {virtual_seconds:.0f} s of virtual time")
    for record in records:
        output = record.output or {}
        failures = Counter(record.task_failures())
        print(
            f"   {record.name[:40]:40} {record.status:9} {output.get('status', '-'):7} into"
            f" {str(output.get('destinationImageSetId', '-'))[:8]}... v{output.get('destinationVersionId', '-')}"
            f"  {record.transitions} states" + "".join(f", {n} {error}" for error, n in failures.items())
        )


def copied(record: ExecutionRecord) -> bool:
    return record.status == "SUCCEEDED" and (record.output or {}).get("status") == "COPIED"


def paces(pipeline: LocalPipeline) -> list[float]:
    """The pace of every dispatcher run so far, from the function's own `Dispatch run` log lines (what
    `aws logs tail ... --filter-pattern '"Dispatch run"'` shows an operator)."""
    found = []
    for line in pipeline.logs.getvalue().splitlines():
        if '"Dispatch run"' in line:
            found.append(float(json.loads(line)["pace"]))
    return found


class Demo:
    def __init__(self) -> None:
        print("Synthesizing the CDK app (copyPolicy snapshot and merge-into-primary)...")
        contexts = [
            {"datastoreId": seed.DATASTORE_ID},
            {"datastoreId": seed.DATASTORE_ID, "copyPolicy": "merge-into-primary"},
        ]
        with ThreadPoolExecutor() as synths:  # each synth is app.py's own process: all at once
            self.snapshot, self.merge = map(WorkflowDefinition.from_template, synths.map(synthesize, contexts))
        self.clock = VirtualClock()
        self.emulator = HealthImagingEmulator(clock=self.clock.now)
        self.datastore = self.emulator.create_datastore(seed.DATASTORE_ID)
        self.hooks: list[Hook] = []  # what happens before each invocation of the function (another writer)
        self.paths: list[PathTaken] = []

    def image_set(
        self, patient: int, study: int, series: int = 1, instances: tuple[int, ...] = (1, 2), **differences: str
    ) -> str:
        """An imported image set: the primary of its series if it is the first, else a non-primary part of it."""
        document = seed.series_image_set_metadata(
            patient_number=patient, study=study, series=series, instances=instances, **differences
        )
        return self.emulator.seed_image_set(self.datastore, document)

    def pipeline(self, workflow: WorkflowDefinition) -> LocalPipeline:
        return LocalPipeline(workflow, self.emulator, self.clock, handler_hook=self._before_invocation)

    def _before_invocation(self, event: dict[str, Any]) -> None:
        for hook in self.hooks:
            hook(event)

    def calls_since(self, before: int) -> Counter[int]:
        """The pipeline's CopyImageSet calls since `before` of them, by HTTP status."""
        return Counter(self.emulator.copy_image_set_calls()[before:])

    # --- the paths ------------------------------------------------------------------------------------------
    def import_event(self, pipeline: LocalPipeline) -> None:
        source = self.image_set(1, 1)
        began = self.clock.now()
        record = pipeline.run_event(seed.image_set_created_event(self.datastore, source, event_id="1"))
        show("1. An import event -> a snapshot copy", record, self.clock.now() - began)
        output = record.output or {}
        self.paths.append(
            PathTaken(
                "import event copied",
                "snapshot",
                [record],
                self.clock.now() - began,
                f"COPIED v{output.get('destinationVersionId')} (new image set)",
                {
                    "COPIED": copied(record),
                    "into a new image set": output.get("destinationImageSetId") not in (None, source),
                    "started by the dispatcher (no ValidateInput)": "ValidateInput" not in record.states_entered(),
                    "one CopyImageSet accepted": len(self.emulator.accepted_copies(source)) == 1,
                },
            )
        )

    def by_hand(self, pipeline: LocalPipeline) -> None:
        source = self.image_set(6, 1)
        copy_input = {"datastoreId": self.datastore, "sourceImageSetId": source}
        began = self.clock.now()
        arn = start(state_machine_arn=pipeline.state_machine_arn, copy_input=copy_input)
        pipeline.started_by_hand(arn)
        again = start(state_machine_arn=pipeline.state_machine_arn, copy_input=copy_input)  # while it runs
        record = pipeline.wait(arn)
        show("2. A copy started by hand (healthimaging-copy start)", record, self.clock.now() - began)
        output = record.output or {}
        self.paths.append(
            PathTaken(
                "copy started by hand",
                "snapshot",
                [record],
                self.clock.now() - began,
                f"COPIED v{output.get('destinationVersionId')} (new image set)",
                {
                    "COPIED": copied(record),
                    "the console's input, validated": "ValidateInput" in record.states_entered(),
                    "its own slot reserved": "ReserveCopySlot" in record.states_entered(),
                    "started twice, one execution": again == arn,
                    "one CopyImageSet accepted": len(self.emulator.accepted_copies(source)) == 1,
                },
            )
        )

    def backfill(self, pipeline: LocalPipeline) -> None:
        existing = [self.image_set(3, 7, series) for series in (1, 2, 3)]
        began = self.clock.now()
        arn = backfill_start(
            state_machine_arn=pipeline.backfill_state_machine_arn,
            table_name=TABLE,
            backfill_id=BACKFILL_ID,
            filters={"studyInstanceUids": [seed.study_uid(3, 7)]},
        )
        backfilled = pipeline.wait(arn)
        records = pipeline.drain_backlog()
        progress = backfill_progress(table_name=TABLE, backfill_id=BACKFILL_ID)
        show_many("3. A backfill of one study's existing image sets", records, self.clock.now() - began)
        print(f"   backfill execution {backfilled.name}: {backfilled.status}, {backfilled.transitions} states entered")
        print(f"   {backfill_line(BACKFILL_ID, progress)}")
        self.paths.append(
            PathTaken(
                f"backfill ({len(existing)} existing)",
                "snapshot",
                records,
                self.clock.now() - began,
                f"{sum(map(copied, records))} of {len(existing)} COPIED",
                {
                    "the backfill execution SUCCEEDED": backfilled.status == "SUCCEEDED",
                    "every one COPIED": len(records) == len(existing) and all(map(copied, records)),
                    "each copied exactly once": all(len(self.emulator.accepted_copies(s)) == 1 for s in existing),
                    "its progress: DONE, all admitted and copied": bool(progress)
                    and (progress or {}).get("backfillState") == "DONE"
                    and int((progress or {}).get("admitted", 0)) == len(existing)
                    and int((progress or {}).get("entriesCOPIED", 0)) == len(existing),
                },
            )
        )

    def throttled(self, pipeline: LocalPipeline) -> None:
        ours = [self.image_set(4, 8, series) for series in (1, 2, 3, 4)]
        theirs = [self.image_set(5, 9, series) for series in range(1, 17)]
        began, calls_before = self.clock.now(), len(self.emulator.copy_image_set_calls())
        paces_before = len(paces(pipeline))
        # Another client of the account's quota: a copy every 4 s (the whole 0.25 a second) for a minute.
        other_client = [
            self.emulator.schedule_copy(began + 4 * n, source, by="another-client", takes_quota=True)
            for n, source in enumerate(theirs)
        ]
        events = [seed.image_set_created_event(self.datastore, s, event_id=f"4{n:03d}") for n, s in enumerate(ours)]
        assert pipeline.admit(events) == []
        records = pipeline.drain_backlog()
        calls = self.calls_since(calls_before)
        seen = paces(pipeline)[paces_before:]
        slowest = min(seen, default=RATE)
        show_many("4. Four imports while another client takes the quota", records, self.clock.now() - began)
        print(
            f"   the other client's copies: {sum(c.accepted is not None for c in other_client)} accepted,"
            f" {sum(c.refusal is not None for c in other_client)} throttled; our CopyImageSet calls:"
            f" {calls[200]} accepted, {calls[429]} throttled; the dispatcher's pace: {RATE} -> {slowest:.3f} a second"
        )
        self.paths.append(
            PathTaken(
                "throttled by another client",
                "snapshot",
                records,
                self.clock.now() - began,
                f"{sum(map(copied, records))} of {len(ours)} COPIED, pace {slowest:.2f}",
                {
                    "the other client took the quota": sum(c.accepted is not None for c in other_client) > 0,
                    "our calls throttled (429)": calls[429] > 0,
                    "CopyThrottled: a new slot": any("CopyThrottled" in r.task_failures() for r in records),
                    "the pace slowed": slowest < RATE,
                    "every one COPIED": len(records) == len(ours) and all(map(copied, records)),
                    "each copied exactly once": all(len(self.emulator.accepted_copies(s)) == 1 for s in ours),
                },
            )
        )

    def conflict(self, pipeline: LocalPipeline, primary: str, other: str) -> None:
        source = self.image_set(2, 5, instances=(3, 4))
        theirs: list[ScheduledCopy] = []

        def lock_the_primary_when_our_call_is_due(event: dict[str, Any]) -> None:
            """StartCopy reads the destination, then holds its call until its slot: another writer's copy
            into the primary, issued at that slot, is there first (the emulator runs what is due at an
            instant before the call made at it)."""
            if event.get("action") == "start_copy" and not theirs and event["request"]["sourceImageSetId"] == source:
                at = max(float(event.get("slotAt") or 0), self.clock.now())
                theirs.append(self.emulator.schedule_copy(at, other, primary))

        self.hooks.append(lock_the_primary_when_our_call_is_due)
        began, calls_before = self.clock.now(), len(self.emulator.copy_image_set_calls())
        record = pipeline.run_event(
            seed.image_set_created_event(self.datastore, source, is_primary=False, event_id="5")
        )
        self.hooks.remove(lock_the_primary_when_our_call_is_due)
        calls = self.calls_since(calls_before)
        show(
            "5. A merge into the primary, which another writer's copy locks as we call",
            record,
            self.clock.now() - began,
        )
        output = record.output or {}
        other_copy = theirs[0].accepted if theirs else None
        print(
            f"   the other writer's copy: {'accepted' if other_copy else 'not issued or refused'}"
            f"{f', version {other_copy.destination_version_id} {other_copy.outcome}' if other_copy else ''};"
            f" our CopyImageSet calls: {calls[409]} conflict (409), {calls[200]} accepted"
        )
        self.paths.append(
            PathTaken(
                "retry on conflict",
                "merge-into-primary",
                [record],
                self.clock.now() - began,
                f"COPIED v{output.get('destinationVersionId')} of the primary",
                {
                    "COPIED": copied(record),
                    "our call refused: ConflictException (409)": calls[409] >= 1,
                    "CopyConflict retried": any(
                        "ConflictException" in c for c in failure_causes(record, "CopyConflict")
                    ),
                    "the other writer's copy COPIED first": other_copy is not None and other_copy.outcome == "COPIED",
                    "ours on the version after theirs": other_copy is not None
                    and output.get("destinationVersionId") == str(other_copy.destination_version_id + 1),
                    "one CopyImageSet of ours accepted": len(self.emulator.accepted_copies(source)) == 1,
                },
            )
        )

    def force(self, pipeline: LocalPipeline) -> None:
        source = self.image_set(2, 5, instances=(5, 6), study_description="SYNTHETIC CT ABDOMEN")
        began = self.clock.now()
        record = pipeline.run_event(
            seed.image_set_created_event(self.datastore, source, is_primary=False, event_id="6")
        )
        show("6. A merge with inconsistent Study metadata -> the force branch", record, self.clock.now() - began)
        output = record.output or {}
        accepted = self.emulator.accepted_copies(source)
        self.paths.append(
            PathTaken(
                "force branch",
                "merge-into-primary",
                [record],
                self.clock.now() - began,
                f"COPIED v{output.get('destinationVersionId')}, forced",
                {
                    "COPIED, forced": copied(record) and output.get("forced") is True,
                    "InconsistentMetadata, then AuthoriseForce": "InconsistentMetadata" in record.task_failures()
                    and "AuthoriseForce" in record.states_entered(),
                    "COPY_FAILED unforced, then COPIED forced": [(c.force, c.outcome) for c in accepted]
                    == [(False, "COPY_FAILED"), (True, "COPIED")],
                },
            )
        )

    # --- the whole run -----------------------------------------------------------------------------------------
    def run(self) -> int:
        with self.pipeline(self.snapshot) as pipeline:
            self.import_event(pipeline)
            self.by_hand(pipeline)
            self.backfill(pipeline)
            self.throttled(pipeline)
        primary = self.image_set(2, 5)
        other = self.image_set(2, 5, instances=(9, 10))  # a non-primary part of its series: the other writer's
        with self.pipeline(self.merge) as pipeline:
            self.conflict(pipeline, primary, other)
            self.force(pipeline)
        return self.summary()

    def summary(self) -> int:
        print("\nSummary: every path the product is defined by")
        header = (
            f"{'path':28} {'policy':19} {'result':34} {'failed tries':32} {'states':>6} {'virtual s':>9}"
            "  ended as it should"
        )
        print(header)
        print("-" * len(header))
        for path in self.paths:
            failures = Counter(name for record in path.records for name in record.task_failures())
            tries = ", ".join(f"{n} {error}" for error, n in failures.items()) or "-"
            states = sum(record.transitions for record in path.records)
            print(
                f"{path.name:28} {path.policy:19} {path.result:34} {tries:32} {states:>6} {path.virtual_seconds:>9.0f}"
                f"  {'yes' if path.ok else 'NO'}"
            )
        calls = Counter(self.emulator.copy_image_set_calls())
        print(
            f"\nThe pipeline's CopyImageSet calls: {sum(calls.values())} (accepted {calls[200]}, conflict {calls[409]},"
            f" throttled {calls[429]}); the other writer's and the other client's copies are not among them"
        )
        failed = [(path.name, check) for path in self.paths for check, held in path.checks.items() if not held]
        for name, check in failed:
            print(f"NOT as it should: {name}: {check}")
        if not failed:
            print("Every path ended as it should.")
        return 1 if failed else 0


def main() -> int:
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # its interpreter logs every caught error; we print them
    return Demo().run()


if __name__ == "__main__":
    sys.exit(main())
