"""Writes tests/fixtures/<release>/ with a previous release's own code (`make upgrade-fixtures`):

    git archive v0.1.0 | tar -x -C /tmp/release
    .venv/bin/python tests/upgrade_fixtures.py --release-source /tmp/release --out tests/fixtures/v0.1.0

Run as a script, so that the repository's own packages are NOT on the path: `infra`, `offline` and the
function's `copier` are imported from --release-source, i.e. the release's code writes every record.

- logical-ids.json: the default app's resources (logical id -> type and deletion policies), for
  tests/test_upgrade.py's check that an upgrade replaces nothing stateful.
- table.json: the table's keys and indexes (CloudFormation adds or removes one index per update).
- workflows.json: the release's state machine definitions (ASL, intrinsic functions unresolved): an
  execution started before an upgrade keeps its definition, so the current code must serve it.
- records.json: what the release left in the table and in its executions (tests/test_upgrade.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

DATASTORE_ID = "0123456789abcdef0123456789abcdef"  # offline.seed.DATASTORE_ID


def logical_ids(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        logical_id: {
            "Type": resource["Type"],
            **{k: resource[k] for k in ("DeletionPolicy", "UpdateReplacePolicy") if k in resource},
        }
        for logical_id, resource in sorted(template["Resources"].items())
    }


def table(template: dict[str, Any]) -> dict[str, Any]:
    tables = [(k, v) for k, v in template["Resources"].items() if v["Type"] == "AWS::DynamoDB::Table"]
    ((logical_id, resource),) = tables
    properties = resource["Properties"]
    keys = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes")
    return {"logicalId": logical_id, **{name: properties[name] for name in keys}}


def workflows(template: dict[str, Any]) -> dict[str, Any]:
    from offline.template import state_machine  # the release's

    return {role: state_machine(template, role)[1]["Properties"]["DefinitionString"] for role in ("copy", "backfill")}


# --- records: what the release's code leaves in the table, the data store and its executions --------------------
# Image sets with fixed ids, so that the test finds them by name.
PRIMARY, CONSISTENT, SECOND_STUDY = "1a" * 16, "2b" * 16, "3c" * 16
BACKFILLED = [f"{n:02d}" + "d" * 30 for n in range(55)]
# The backlog as lanes meet it: an import after a backfill's admissions, a failed copy, a dispatcher run under way.
IMPORTED, FAILING = "4e" * 16, "5f" * 16
IN_BACKLOG = [f"{n:02d}" + "a" * 30 for n in range(20)]


class Recorder:
    """Snapshots of one LocalPipeline run, taken just before chosen steps run: the table then holds what the
    execution left while it waited in the state before that step."""

    def __init__(self, pipeline: Any, emulator: Any, clock: Any) -> None:
        self.pipeline, self.emulator, self.clock = pipeline, emulator, clock
        self.snapshots: dict[str, dict[str, Any]] = {}

    def table(self) -> list[dict[str, Any]]:
        import boto3

        from offline.runner import REGION, TABLE  # the release's

        items: list[dict[str, Any]] = []
        for page in boto3.client("dynamodb", region_name=REGION).get_paginator("scan").paginate(TableName=TABLE):
            items.extend(page["Items"])
        return sorted(items, key=lambda item: item["id"]["S"])

    def data_store(self) -> list[dict[str, Any]]:
        """The emulator's image sets, every version (nothing in flight: taken when every copy has landed)."""
        with self.emulator._lock:
            self.emulator._settle()
            assert not self.emulator.pending, "a copy is in flight: not a state the test can rebuild"
            return [dataclasses.asdict(image_set) for image_set in self.emulator.image_sets.values()]

    def take(self, name: str, *, data_store: bool = True) -> None:
        self.snapshots[name] = {
            "clock": self.clock.now(),
            "writtenAt": time.time(),  # real time: idempotency records expire by it
            "table": self.table(),
            **({"dataStore": self.data_store()} if data_store else {}),
        }


def _wait_inputs(record: Any) -> dict[str, Any]:
    """Each Wait state's input, the first time the execution entered it, and the execution's input."""
    found: dict[str, Any] = {}
    for event in record.events:
        if event["type"] == "ExecutionStarted":
            found["executionInput"] = json.loads(event["executionStartedEventDetails"]["input"])
        if event["type"] == "WaitStateEntered":
            details = event["stateEnteredEventDetails"]
            found.setdefault(details["name"], json.loads(details["input"]))
    return found


def records(template: dict[str, Any]) -> dict[str, Any]:
    from offline import seed  # the release's, as everything below
    from offline.clock import VirtualClock
    from offline.emulator import HealthImagingEmulator
    from offline.runner import LocalPipeline
    from offline.template import WorkflowDefinition

    workflow = WorkflowDefinition.from_template(template)
    scenarios: dict[str, Any] = {}

    def seeded(emulator: Any, *studies: tuple[str, int, tuple[int, ...]]) -> None:
        emulator.create_datastore(DATASTORE_ID)
        for image_set_id, study, instances in studies:
            document = seed.series_image_set_metadata(patient_number=1, study=study, series=1, instances=instances)
            emulator.seed_image_set(DATASTORE_ID, document, image_set_id=image_set_id)

    # 1. A dispatched copy: PENDING in the journal, then waiting for its slot (the dispatcher's schedule item, the
    #    pacing item, another entry PENDING), then waiting for the copy (copy record ACCEPTED, idempotency record).
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now, copy_seconds=2.0)  # landed before the first look (5 s)
    seeded(emulator, (PRIMARY, 1, (1, 2)), (SECOND_STUDY, 2, (1,)))
    recorder: Recorder

    def at_step(event: dict[str, Any]) -> None:
        from copier import intake  # the release's function, loaded by the pipeline

        action = event.get("action")
        if action == "start_copy" and "waitingForSlot" not in recorder.snapshots:
            intake.admit_event(seed.image_set_created_event(DATASTORE_ID, SECOND_STUDY, is_primary=True))
            recorder.take("waitingForSlot")
        if action == "check_copy" and "waitingForCopy" not in recorder.snapshots:
            recorder.take("waitingForCopy")

    with LocalPipeline(workflow, emulator, clock, handler_hook=at_step) as pipeline:
        from copier import intake

        recorder = Recorder(pipeline, emulator, clock)
        intake.admit_event(seed.image_set_created_event(DATASTORE_ID, PRIMARY, is_primary=True))
        recorder.take("pending")
        (first,) = pipeline.dispatch()
        copied = pipeline.wait(first)
        assert copied.status == "SUCCEEDED", copied.cause
        scenarios["dispatched"] = {"snapshots": recorder.snapshots, "execution": {
            "name": copied.name, **_wait_inputs(copied)}}  # fmt: skip

    # 2. A console copy into an existing image set whose answer was lost (a 500 after the copy was accepted):
    #    ConfirmCopy cannot tell yet (the copy is still being written) and waits (copy record CALLING).
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now, copy_seconds=30.0)
    seeded(emulator, (PRIMARY, 1, (1, 2)), (CONSISTENT, 1, (3, 4)))

    def at_confirm(event: dict[str, Any]) -> None:
        if event.get("action") == "confirm_copy":
            looks["n"] += 1
            if looks["n"] == 2:
                recorder.take("waitingBeforeLookingAgain", data_store=False)  # a copy in flight: see below

    looks = {"n": 0}
    with LocalPipeline(workflow, emulator, clock, handler_hook=at_confirm) as pipeline:
        recorder = Recorder(pipeline, emulator, clock)
        emulator.faults.copy_faults.append("accept-then-500")
        console_input = {"datastoreId": DATASTORE_ID, "sourceImageSetId": CONSISTENT, "destinationImageSetId": PRIMARY}
        confirmed = pipeline.run(console_input, name="console-merge")
        assert confirmed.status == "SUCCEEDED", confirmed.cause
        # The data store once the copy landed: what the execution finds when it looks again after the upgrade.
        recorder.snapshots["waitingBeforeLookingAgain"]["dataStore"] = recorder.data_store()
        scenarios["confirming"] = {"snapshots": recorder.snapshots, "execution": {
            "name": confirmed.name, **_wait_inputs(confirmed)}}  # fmt: skip

    # 3. A backfill between two pages: its progress item (filters, cursor with a nextToken, counters) and the
    #    entries its first page admitted.
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now)
    seeded(emulator, *((image_set_id, 10 + n, (1,)) for n, image_set_id in enumerate(BACKFILLED)))
    clock.advance(60)

    def at_page(event: dict[str, Any]) -> None:
        if event.get("action") == "backfill_page":
            pages["n"] += 1
            if pages["n"] == 2:
                recorder.take("betweenPages")

    pages = {"n": 0}
    with LocalPipeline(workflow, emulator, clock, handler_hook=at_page) as pipeline:
        recorder = Recorder(pipeline, emulator, clock)
        backfilled = backfill_everything(pipeline)
        scenarios["backfill"] = {"snapshots": recorder.snapshots, "execution": {
            "name": backfilled.name, **_wait_inputs(backfilled)}}  # fmt: skip
    scenarios["backlog"] = backlog(workflow, seeded)
    return scenarios


def backfill_everything(pipeline: Any) -> Any:
    """The release's `ops.cli backfill start --everything` as backfill "bf", run to its end: its execution's record."""
    from offline.runner import TABLE  # the release's
    from ops.cli import backfill_start

    arn = backfill_start(
        state_machine_arn=pipeline.backfill_state_machine_arn,
        table_name=TABLE,
        backfill_id="bf",
        filters={"everything": True},
    )
    backfilled = pipeline.wait(arn)
    assert backfilled.status == "SUCCEEDED", backfilled.cause
    return backfilled


def backlog(workflow: Any, seeded: Any) -> dict[str, Any]:
    """4. The one backlog of a release before lanes: a copy that FAILED (its call refused), a backfill's 20 PENDING
    entries, then an import's PENDING entry after them; then a dispatcher run under way: the table and the inputs
    of the executions it started (each waiting for its slot, no function step under way, no copy called yet), the
    pacing item as it left it."""
    import boto3

    from offline import seed  # the release's, as everything below
    from offline.clock import VirtualClock
    from offline.emulator import HealthImagingEmulator
    from offline.runner import LocalPipeline

    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now)
    seeded(
        emulator,
        (FAILING, 30, (1,)),
        *((image_set_id, 40 + n, (1,)) for n, image_set_id in enumerate(IN_BACKLOG)),
    )
    clock.advance(60)
    with LocalPipeline(workflow, emulator, clock) as pipeline:
        from copier import intake  # the release's function, loaded by the pipeline

        recorder = Recorder(pipeline, emulator, clock)
        emulator.faults.copy_faults.append("error:AccessDeniedException")
        intake.admit_event(seed.image_set_created_event(DATASTORE_ID, FAILING, is_primary=True))
        (failing,) = pipeline.dispatch()
        failed = pipeline.wait(failing)
        assert failed.status == "FAILED", failed.status
        clock.advance(60)
        backfill_everything(pipeline)
        clock.advance(10)
        emulator.seed_image_set(
            DATASTORE_ID,
            seed.series_image_set_metadata(patient_number=1, study=90, series=1, instances=(1,)),
            image_set_id=IMPORTED,
        )
        intake.admit_event(seed.image_set_created_event(DATASTORE_ID, IMPORTED, is_primary=True))
        clock.advance(10)

        def at_first_copy(event: dict[str, Any]) -> None:
            """Just before the run's first StartCopy: the run has ended (it held the handler until its entries
            were marked STARTED), its executions wait for their slots, no function step is under way."""
            if event.get("action") == "start_copy" and "runUnderWay" not in recorder.snapshots:
                with pipeline._handler_lock:
                    recorder.take("runUnderWay")

        pipeline.handler_hook = at_first_copy
        started = pipeline.dispatch()
        sfn = boto3.client("stepfunctions")
        described = [sfn.describe_execution(executionArn=arn) for arn in started]
        inputs = {execution["name"]: json.loads(execution["input"]) for execution in described}
        for arn in started:
            copied = pipeline.wait(arn)
            assert copied.status == "SUCCEEDED", copied.cause
    return {"snapshots": recorder.snapshots, "executions": inputs}


def write(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release-source", type=Path, required=True, help="the release's files (git archive)")
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    source = arguments.release_source.resolve()
    sys.path[:0] = [str(source), str(source / "lambda")]
    arguments.out.mkdir(parents=True, exist_ok=True)

    from offline.template import synthesize  # the release's

    template = synthesize({"datastoreId": DATASTORE_ID})
    write(arguments.out / "logical-ids.json", logical_ids(template))
    write(arguments.out / "table.json", table(template))
    write(arguments.out / "workflows.json", workflows(template))
    write(arguments.out / "records.json", records(template))


if __name__ == "__main__":
    main()
