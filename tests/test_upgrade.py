"""Upgrading a deployed stack: the previous release's template and records (tests/fixtures/v0.1.0/, written
by that release's own code: `make upgrade-fixtures`) against the current code.

The logical ids: CloudFormation replaces a resource whose logical id changes, and a replaced table is a
lost copy journal, a replaced queue lost events, a replaced state machine its executions in flight.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from captured_output import CAPTURED_OUTPUT
from function_stubs import emf_metrics
from stack_app import synthesize
from workflow import DS, before_each_task_call, workflow

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator, ImageSet, ImageSetVersion
from offline.runner import ACCOUNT, REGION, TABLE, LocalPipeline
from offline.template import WorkflowDefinition, resolve
from ops.cli import backfill_progress, journal_entries

IDEMPOTENCY_KEY_PREFIX = "healthimaging-copy#start-copy"  # lambda/copier/copy_start.py: never to change

pytestmark = pytest.mark.slow

RELEASE = Path(__file__).resolve().parent / "fixtures" / "v0.1.0"
STATEFUL = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::KMS::Key", "AWS::Logs::LogGroup", "AWS::SNS::Topic")
# Resources of the previous release this one removes on purpose, and why. Stateless only: a deploy deletes them
# and loses nothing (the test below refuses a stateful one here).
INTENDED_REMOVALS = {
    # The backlog's age alarm, replaced by BacklogLate (alarm MonitoringBacklogLate...): a 1M backfill's age is
    # weeks on time, so the alarm watches how late the oldest copy is instead (docs/operations.md, Alarms).
    "MonitoringBacklogAge056EF81C": "AWS::CloudWatch::Alarm",
}


def release_resources() -> dict[str, dict[str, str]]:
    resources: dict[str, dict[str, str]] = json.loads((RELEASE / "logical-ids.json").read_text())
    return resources


def current_resources() -> dict[str, Any]:
    resources: dict[str, Any] = synthesize()[1].to_json()["Resources"]
    return resources


def test_every_resource_of_the_previous_release_keeps_its_logical_id_and_type() -> None:
    before = {logical_id: resource["Type"] for logical_id, resource in release_resources().items()}
    now = {logical_id: resource["Type"] for logical_id, resource in current_resources().items()}
    changed = {k: v for k, v in before.items() if now.get(k) != v}
    assert changed == INTENDED_REMOVALS, "renamed or retyped: an upgrade replaces them"
    assert not set(INTENDED_REMOVALS) & set(now)  # removed, not kept under another type
    assert not any(kind in STATEFUL for kind in INTENDED_REMOVALS.values())
    assert sum(kind in STATEFUL for kind in before.values()) == 8  # table, 2 queues, key, 3 log groups, topic


def test_what_the_previous_release_kept_on_deletion_is_still_kept() -> None:
    now = current_resources()
    for logical_id, resource in release_resources().items():
        if resource.get("DeletionPolicy") == "Retain":
            assert now[logical_id].get("DeletionPolicy") == "Retain", logical_id
            assert now[logical_id].get("UpdateReplacePolicy") == "Retain", logical_id


# --- records and executions the previous release left: finished by the current code ------------------------------
# The upgrade from 0.1.0 is the one where executions in flight run the new code: 0.1.0's state machines invoke the
# function unqualified. Each test takes a snapshot of the table (and the data store) written by 0.1.0's code
# while an execution waited in a state, starts that execution again from that state on 0.1.0's definition (its
# state payload as 0.1.0 saved it), and lets the current handler finish it. A change that cannot read one of
# these records fails here, naming it in the execution's error.
RECORDS: dict[str, Any] = json.loads((RELEASE / "records.json").read_text())
WORKFLOWS: dict[str, Any] = json.loads((RELEASE / "workflows.json").read_text())
PRIMARY, CONSISTENT, SECOND_STUDY = "1a" * 16, "2b" * 16, "3c" * 16  # tests/upgrade_fixtures.py
BACKFILLED = 55
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:copy-image-set"


def snapshot(scenario: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = RECORDS[scenario]["snapshots"][name]
    return found


def saved_state(scenario: str, state: str) -> dict[str, Any]:
    found: dict[str, Any] = RECORDS[scenario]["execution"][state]
    return found


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
    """As the local runner resolves a template's intrinsic functions (0.1.0's function has the same logical id)."""
    return {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        **current.function_refs(FUNCTION_ARN),
        current.table_logical_id: TABLE,
    }


def release_definition(role: str, start_at: str, current: WorkflowDefinition) -> str:
    """0.1.0's synthesized definition, started at `start_at`: where its execution waited."""
    definition = json.loads(str(resolve(WORKFLOWS[role], refs(current))))
    assert start_at in definition["States"], f"0.1.0's {role} workflow has no state {start_at}"
    return json.dumps({**definition, "StartAt": start_at})


def resumed(role: str, state: str) -> WorkflowDefinition:
    """The current workflow (environment, table) with 0.1.0's definition of `role` starting at `state`."""
    current = workflow()
    if role == "copy":
        return dataclasses.replace(current, definition=json.dumps(release_definition("copy", state, current)))
    return dataclasses.replace(current, backfill_definition=json.dumps(release_definition("backfill", state, current)))


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


@contextmanager
def pipeline_on(
    scenario: str, name: str, workflow_definition: WorkflowDefinition | None = None
) -> Iterator[tuple[LocalPipeline, HealthImagingEmulator]]:
    taken = snapshot(scenario, name)
    clock = VirtualClock(start=float(taken["clock"]))
    emulator = data_store(taken, clock)
    with LocalPipeline(workflow_definition or workflow(), emulator, clock) as pipeline:
        load_table(taken)
        try:
            yield pipeline, emulator
        finally:
            CAPTURED_OUTPUT.append(pipeline.logs.getvalue())  # for the PHI check


def test_a_pending_journal_entry_is_dispatched_and_copied_once() -> None:
    with pipeline_on("dispatched", "pending") as (pipeline, emulator):
        (copied,) = pipeline.drain_backlog()
        assert copied.status == "SUCCEEDED", f"0.1.0's PENDING journal entry: {copied.error} {copied.cause}"
        assert journal_status(PRIMARY) == "COPIED"
    assert len(emulator.accepted_copies(PRIMARY)) == 1


def test_an_execution_waiting_for_its_slot_copies_once_and_the_backlog_follows() -> None:
    """0.1.0's execution resumes at WaitForCopySlot on its pacing item; the current dispatcher reads 0.1.0's
    pacing item (nextSlot alone), finishes its schedule item and starts the entry 0.1.0 left PENDING, on the
    current definition (with its plan and slot: RouteCopy, then straight to WaitForCopySlot)."""
    name = RECORDS["dispatched"]["execution"]["name"]
    with pipeline_on("dispatched", "waitingForSlot", resumed("copy", "WaitForCopySlot")) as (pipeline, emulator):
        assert (journal_status(PRIMARY), journal_status(SECOND_STUDY)) == ("STARTED", "PENDING")
        arn = pipeline.start(saved_state("dispatched", "WaitForCopySlot"), name=name)
        deploy_current_definition(pipeline)
        waited = pipeline.wait(arn)
        assert waited.status == "SUCCEEDED", f"0.1.0's execution at WaitForCopySlot: {waited.error} {waited.cause}"
        (following,) = pipeline.drain_backlog()
        assert following.status == "SUCCEEDED", f"0.1.0's PENDING entry: {following.error} {following.cause}"
        # The current definition, from its start (0.1.0's started at ValidateInput, and had no AwaitCopy).
        assert following.states_entered()[:2] == ["RouteCopy", "WaitForCopySlot"]
        assert "AwaitCopy" in following.states_entered()
        assert table_item("dispatcher#schedule") is None  # 0.1.0's schedule item: finished
        assert (journal_status(PRIMARY), journal_status(SECOND_STUDY)) == ("COPIED", "COPIED")
    assert [len(emulator.accepted_copies(source)) for source in (PRIMARY, SECOND_STUDY)] == [1, 1]


def test_a_dispatcher_run_of_the_previous_release_under_way_at_the_deploy_is_waited_for() -> None:
    """0.1.0's dispatcher leased its runs on its schedule item: a run of it still under way at the deploy (its
    lease 30 s from its end) keeps the current dispatcher from starting anything until the lease ends; then the
    current dispatcher starts the entry 0.1.0 left PENDING, once, and removes 0.1.0's item."""
    with pipeline_on("dispatched", "waitingForSlot") as (pipeline, emulator):
        lease_until = pipeline.clock.now() + 30
        boto3.client("dynamodb", region_name=REGION).update_item(
            TableName=TABLE,
            Key={"id": {"S": "dispatcher#schedule"}},
            UpdateExpression="SET leaseUntil = :until",
            ExpressionAttributeValues={":until": {"N": str(lease_until)}},
        )
        held_off = pipeline.call_function({"action": "dispatch"})
        still_there = table_item("dispatcher#schedule")
        pipeline.clock.advance(30)
        (following,) = pipeline.drain_backlog()
        assert following.status == "SUCCEEDED", f"0.1.0's PENDING entry: {following.error} {following.cause}"
        assert journal_status(SECOND_STUDY) == "COPIED"
        assert table_item("dispatcher#schedule") is None
    assert (held_off["ran"], held_off["started"]) == (False, [])
    assert still_there is not None and still_there["leaseUntil"] == {"N": str(lease_until)}
    assert len(emulator.accepted_copies(SECOND_STUDY)) == 1


def test_an_execution_waiting_for_its_copy_finishes_on_the_copy_it_started() -> None:
    with pipeline_on("dispatched", "waitingForCopy", resumed("copy", "WaitForCopy")) as (pipeline, emulator):
        record = pipeline.run(saved_state("dispatched", "WaitForCopy"), name=RECORDS["dispatched"]["execution"]["name"])
        assert record.status == "SUCCEEDED", f"0.1.0's execution at WaitForCopy: {record.error} {record.cause}"
        assert journal_status(PRIMARY) == "COPIED"
    assert emulator.copy_image_set_calls() == []  # read its ACCEPTED copy record: no second CopyImageSet
    output = record.output or {}
    assert (output["status"], output["destinationImageSetId"]) == (
        "COPIED",
        saved_state("dispatched", "WaitForCopy")["copy"]["destinationImageSetId"],
    )


@pytest.mark.parametrize("answered_by", ["idempotency record", "copy record"])
def test_a_start_repeated_after_the_upgrade_is_answered_by_the_previous_release_s_records(answered_by: str) -> None:
    """StartCopy ran on 0.1.0 and its answer was lost (a task retry after the upgrade): the current code finds
    0.1.0's idempotency record and returns its answer; with that record gone (expired), 0.1.0's ACCEPTED copy
    record answers. No second CopyImageSet either way."""
    with pipeline_on("dispatched", "waitingForCopy", resumed("copy", "WaitForCopySlot")) as (pipeline, emulator):
        if answered_by == "copy record":
            (idempotency_key,) = [
                item["id"]["S"]
                for item in snapshot("dispatched", "waitingForCopy")["table"]
                if item["id"]["S"].startswith(IDEMPOTENCY_KEY_PREFIX)
            ]
            boto3.client("dynamodb", region_name=REGION).delete_item(
                TableName=TABLE, Key={"id": {"S": idempotency_key}}
            )
        record = pipeline.run(saved_state("dispatched", "WaitForCopySlot"))
        assert record.status == "SUCCEEDED", f"0.1.0's {answered_by}: {record.error} {record.cause}"
        logs = pipeline.logs.getvalue()
    assert emulator.copy_image_set_calls() == []
    suppressed = emf_metrics(logs).get("DuplicatesSuppressed")
    assert suppressed == (1 if answered_by == "idempotency record" else None)


def test_a_start_answered_by_the_previous_release_s_idempotency_record_waits_on_the_current_definition() -> None:
    """A new execution of a request 0.1.0 started (an operator's retry after the deploy): StartCopy's answer is
    0.1.0's, kept for copyRecordRetentionDays, and has no wakeSince; the current definition's AwaitCopy needs
    one (a missing path fails the execution with States.Runtime, which no catch takes): the wait starts now."""
    with pipeline_on("dispatched", "waitingForCopy") as (pipeline, emulator):
        record = pipeline.run(saved_state("dispatched", "executionInput"))
        assert record.status == "SUCCEEDED", f"0.1.0's answer on the current definition: {record.error} {record.cause}"
        assert "AwaitCopy" in record.states_entered()
        logs = pipeline.logs.getvalue()
    assert emulator.copy_image_set_calls() == []
    assert emf_metrics(logs).get("DuplicatesSuppressed") == 1  # 0.1.0's answer it was


def test_an_unconfirmed_copy_is_confirmed_from_the_previous_release_s_copy_record() -> None:
    """0.1.0's ConfirmCopy waited (its copy record CALLING); the copy landed meanwhile: the current code proves
    it ours and adopts it, no second CopyImageSet."""
    state = saved_state("confirming", "WaitBeforeLookingAgain")
    with pipeline_on("confirming", "waitingBeforeLookingAgain", resumed("copy", "WaitBeforeLookingAgain")) as (
        pipeline,
        emulator,
    ):
        record = pipeline.run(state)
        assert record.status == "SUCCEEDED", f"0.1.0's CALLING copy record: {record.error} {record.cause}"
    assert emulator.copy_image_set_calls() == []
    output = record.output or {}
    assert (output["destinationImageSetId"], output["destinationVersionId"]) == (PRIMARY, "2")


def test_a_backfill_between_pages_goes_on_and_admits_each_image_set_once() -> None:
    """0.1.0's progress item and cursor: the current code reads them, its saved token is refused (a token of
    another emulator, as an old one would be), and the search goes on from its start, admitting the rest."""
    state = saved_state("backfill", "BetweenPages")
    with pipeline_on("backfill", "betweenPages", resumed("backfill", "BetweenPages")) as (pipeline, emulator):
        backfill_arn = pipeline.backfill_state_machine_arn
        arn = boto3.client("stepfunctions", region_name=REGION).start_execution(
            stateMachineArn=backfill_arn, name=RECORDS["backfill"]["execution"]["name"], input=json.dumps(state)
        )["executionArn"]
        record = pipeline.wait(arn)
        assert record.status == "SUCCEEDED", f"0.1.0's backfill progress item: {record.error} {record.cause}"
        progress = backfill_progress(table_name=TABLE, backfill_id="bf") or {}
        journaled = [e for e in boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]
                     if e["id"]["S"].startswith("journal#")]  # fmt: skip
    assert (progress["backfillState"], progress["admitted"], len(journaled)) == ("DONE", BACKFILLED, BACKFILLED)
    assert any(op == "SearchImageSets" and status == 400 for op, status in emulator.calls)


def test_the_previous_release_s_console_input_runs_on_the_current_definition() -> None:
    execution_input = saved_state("confirming", "executionInput")
    with pipeline_on("confirming", "waitingBeforeLookingAgain") as (pipeline, _):
        record = pipeline.run(execution_input)
    assert record.status == "SUCCEEDED", f"0.1.0's console input: {record.error} {record.cause}"


# --- executions of the definition before issue 24 (still running at the deploy): ---------------------------------
# Its AwaitCopy left the token on the destination's wake item alone (an UpdateItem); the current one leaves it on
# the source's too, in a transaction, and waits before trying again when its write fails. Written from main at
# cbdcb93 by `tests/upgrade_fixtures.py --release-source <git archive cbdcb93> --out tests/fixtures/main-cbdcb93
# --only workflows`. Its executions invoke the function version they started with for their steps; the completion
# queue's consumer (copier.wake) is the latest function's: it must wake them, and the current steps still read
# what their AwaitCopy answers.
PREVIOUS_DEFINITION: dict[str, Any] = json.loads((RELEASE.parent / "main-cbdcb93" / "workflows.json").read_text())


def on_previous_definition() -> WorkflowDefinition:
    """The current workflow (environment, table) with the previous copy definition, which invokes the function
    version it was deployed with (another logical id: the version's hash), resolved as the current one is."""
    current = workflow()
    (version,) = {
        part["Ref"]
        for part in PREVIOUS_DEFINITION["copy"]["Fn::Join"][1]
        if isinstance(part, dict) and "CurrentVersion" in str(part.get("Ref", ""))
    }
    previous_refs = {**refs(current), version: f"{FUNCTION_ARN}:1"}
    definition = json.loads(str(resolve(PREVIOUS_DEFINITION["copy"], previous_refs)))
    assert definition["States"]["AwaitCopy"]["Resource"].endswith(":dynamodb:updateItem.waitForTaskToken")
    return dataclasses.replace(current, definition=json.dumps(json.dumps(definition)))  # as release_definition


@pytest.mark.parametrize("event_first", [False, True], ids=["event after the token", "event before the token"])
def test_a_copy_of_the_previous_definition_is_woken_by_its_event_and_finishes(event_first: bool) -> None:
    """The previous AwaitCopy's item (the destination's, no partner) woken by the current consumer; or, the event
    recorded before its token, its UpdateItem's failed condition read as "event already recorded" (looked at
    once), not as a failure of AwaitCopy's (that would wait first)."""
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now, copy_seconds=0 if event_first else 45)
    emulator.create_datastore(DS)
    source = emulator.seed_image_set(DS, seed.image_set_metadata(patient_number=1, study=1, series=[1]))
    announced: list[dict[str, Any]] = []
    delivered_first: list[int] = []
    with LocalPipeline(on_previous_definition(), emulator, clock) as pipeline:

        def event_first_hook(params: dict[str, Any], **_: Any) -> None:  # just before AwaitCopy's UpdateItem
            if params.get("Key", {}).get("id", {}).get("S", "").startswith("wake#") and not delivered_first:
                emulator.settle()
                delivered_first.append(len(pipeline.deliver_events(list(announced))))

        if event_first:  # the copy lands at once, and its event is recorded before the token's write
            pipeline.events.drop = lambda event: True
            emulator.event_listeners.append(announced.append)
        with before_each_task_call("UpdateItem", event_first_hook if event_first else lambda **_: None):
            assert pipeline.admit([seed.image_set_created_event(DS, source, event_id="1", is_primary=True)]) == []
            (record,) = pipeline.drain_backlog()
        metrics = emf_metrics(pipeline.logs.getvalue())
        CAPTURED_OUTPUT.append(pipeline.logs.getvalue())
    assert delivered_first == ([0] if event_first else [])  # the event came first (delivered, used)
    output = record.output or {}
    assert record.status == "SUCCEEDED" and output["status"] == "COPIED", f"{record.error} {record.cause}"
    assert len(emulator.accepted_copies(source)) == 1
    assert "AwaitCopyFailures" not in metrics and "CompletionEventsMissed" not in metrics
    if event_first:
        assert "DynamoDb.ConditionalCheckFailedException" in record.task_failures()
        assert output["waitedSeconds"] == 0
    else:
        assert metrics["CopiesWoken"] == 1 and output["waitedSeconds"] <= emulator.copy_seconds + 2
