"""A previous release's fixtures (tests/fixtures/<release>/, written by that release's own code: `make
upgrade-fixtures`) and what the upgrade tests do with them: rebuild the table and the data store of a snapshot,
start an execution on that release's definition, deploy the current one."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
from captured_output import CAPTURED_OUTPUT
from workflow import DS, workflow

from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator, ImageSet, ImageSetVersion
from offline.runner import ACCOUNT, REGION, TABLE, LocalPipeline
from offline.template import WorkflowDefinition, resolve
from ops.cli import journal_entries

FIXTURES = Path(__file__).resolve().parent / "fixtures"
IDEMPOTENCY_KEY_PREFIX = "healthimaging-copy#start-copy"  # lambda/copier/copy_start.py: never to change
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:copy-image-set"
STATEFUL = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::KMS::Key", "AWS::Logs::LogGroup", "AWS::SNS::Topic")


@dataclasses.dataclass(frozen=True)
class Release:
    name: str  # its directory under tests/fixtures

    @property
    def path(self) -> Path:
        return FIXTURES / self.name

    def _json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    @cached_property
    def logical_ids(self) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = self._json("logical-ids.json")
        return found

    @cached_property
    def table(self) -> dict[str, Any]:
        found: dict[str, Any] = self._json("table.json")
        return found

    @cached_property
    def records(self) -> dict[str, Any]:
        found: dict[str, Any] = self._json("records.json")
        return found

    @cached_property
    def workflows(self) -> dict[str, Any]:
        found: dict[str, Any] = self._json("workflows.json")
        return found

    def snapshot(self, scenario: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.records[scenario]["snapshots"][name]
        return found

    def saved_state(self, scenario: str, state: str) -> dict[str, Any]:
        found: dict[str, Any] = self.records[scenario]["execution"][state]
        return found

    def definition(self, role: str, start_at: str, current: WorkflowDefinition) -> str:
        """The release's synthesized definition, started at `start_at`: where its execution waited."""
        # Its state machines invoke its own published version (from 0.2.0): here, the function as the runner has it.
        versions = {k: f"{FUNCTION_ARN}:1" for k, v in self.logical_ids.items() if v["Type"] == "AWS::Lambda::Version"}
        definition = json.loads(str(resolve(self.workflows[role], {**refs(current), **versions})))
        assert start_at in definition["States"], f"{self.name}'s {role} workflow has no state {start_at}"
        return json.dumps({**definition, "StartAt": start_at})

    def resumed(self, role: str, state: str) -> WorkflowDefinition:
        """The current workflow (environment, table) with the release's definition of `role` starting at `state`."""
        current = workflow()
        resumed = json.dumps(self.definition(role, state, current))
        if role == "copy":
            return dataclasses.replace(current, definition=resumed)
        return dataclasses.replace(current, backfill_definition=resumed)

    @contextmanager
    def pipeline_on(
        self, scenario: str, name: str, workflow_definition: WorkflowDefinition | None = None
    ) -> Iterator[tuple[LocalPipeline, HealthImagingEmulator]]:
        """The current code on the table and data store of one snapshot, at its moment."""
        taken = self.snapshot(scenario, name)
        clock = VirtualClock(start=float(taken["clock"]))
        emulator = data_store(taken, clock)
        with LocalPipeline(workflow_definition or workflow(), emulator, clock) as pipeline:
            load_table(taken)
            try:
                yield pipeline, emulator
            finally:
                CAPTURED_OUTPUT.append(pipeline.logs.getvalue())  # for the PHI check


def data_store(taken: dict[str, Any], clock: VirtualClock) -> HealthImagingEmulator:
    """The emulator holding the image sets of the snapshot, every version."""
    emulator = HealthImagingEmulator(clock=clock.now)
    emulator.create_datastore(DS)
    for image_set in taken["dataStore"]:
        versions = [ImageSetVersion(**version) for version in image_set["versions"]]
        emulator.image_sets[(image_set["datastore_id"], image_set["image_set_id"])] = ImageSet(
            **{**image_set, "versions": versions}
        )
    return emulator


def load_table(taken: dict[str, Any]) -> None:
    """The snapshot's items into the pipeline's table. Idempotency records expire by the real clock: they are
    moved on by the time since they were written, as if the upgrade came right after."""
    moved_on = time.time() - float(taken["writtenAt"])
    client = boto3.client("dynamodb", region_name=REGION)
    for written in taken["table"]:
        item = dict(written)
        if item["id"]["S"].startswith(IDEMPOTENCY_KEY_PREFIX):
            item["expiration"] = {"N": str(int(float(item["expiration"]["N"]) + moved_on))}
            if "in_progress_expiration" in item:
                shifted = int(float(item["in_progress_expiration"]["N"]) + moved_on * 1000)
                item["in_progress_expiration"] = {"N": str(shifted)}
        client.put_item(TableName=TABLE, Item=item)


def refs(current: WorkflowDefinition) -> dict[str, str]:
    """As the local runner resolves a template's intrinsic functions (the releases' function has the same logical
    id, and their published version resolves as the current one's)."""
    return {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        **current.function_refs(FUNCTION_ARN),
        current.table_logical_id: TABLE,
    }


def deploy_current_definition(pipeline: LocalPipeline) -> None:
    """The upgrade's state machine update: executions started from now on run the current definition."""
    current = workflow()
    boto3.client("stepfunctions", region_name=REGION).update_state_machine(
        stateMachineArn=pipeline.state_machine_arn,
        definition=str(resolve(json.loads(current.definition), refs(current))),
    )


def table_item(key: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        boto3.client("dynamodb", region_name=REGION).get_item(TableName=TABLE, Key={"id": {"S": key}}).get("Item")
    )
    return item


def journal_status(image_set_id: str) -> str:
    (entry,) = journal_entries(table_name=TABLE, image_set_id=image_set_id)
    return str(entry["journalStatus"])
