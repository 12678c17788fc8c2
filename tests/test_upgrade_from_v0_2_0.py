"""Upgrading from 0.2.0, the release before lanes: its table gains the lanes' index in place, and what its code
wrote (tests/fixtures/v0.2.0/, by its own code: `make upgrade-fixtures`) is read and finished by the current code.

0.2.0's backlog is one queue, oldest first, and its entries name no lane. Its state machines invoke the
function version published with them, so its executions in flight finish on its code; here they run the
current handler on 0.2.0's definition (the stronger test: the current code reads 0.2.0's payloads too). The
entries it left PENDING are labelled by the dispatcher (copier.legacy_lanes): a backfill's into the bulk lane,
the rest into the live lane, and each is copied once.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import pytest
from captured_output import CAPTURED_OUTPUT
from function_stubs import emf_documents, emf_metrics
from release_fixtures import Release, deploy_current_definition
from stack_app import synthesize
from workflow import DS, before_each_task_call

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import REGION, TABLE, LocalPipeline
from offline.template import WorkflowDefinition
from ops.cli import backfill_progress, journal_entries, retry

pytestmark = pytest.mark.slow

RELEASE = Release("v0.2.0")
IMPORTED, FAILING = "4e" * 16, "5f" * 16  # tests/upgrade_fixtures.py
IN_BACKLOG = [f"{n:02d}" + "a" * 30 for n in range(20)]


def test_the_table_keeps_its_logical_id_and_gains_one_index_in_place() -> None:
    """CloudFormation updates a table in place to add (or delete) one global secondary index per update: more in
    one deploy fails it. The lanes' index is the one this release adds; every index of 0.2.0 is kept as it was."""
    resources = synthesize()[1].to_json()["Resources"]
    ((logical_id, table),) = [(k, v) for k, v in resources.items() if v["Type"] == "AWS::DynamoDB::Table"]
    before = {index["IndexName"]: index for index in RELEASE.table["GlobalSecondaryIndexes"]}
    now = {index["IndexName"]: index for index in table["Properties"]["GlobalSecondaryIndexes"]}
    assert logical_id == RELEASE.table["logicalId"]
    assert table["Properties"]["KeySchema"] == RELEASE.table["KeySchema"]
    assert set(now) - set(before) == {"journalBacklog"} and set(before) <= set(now)
    assert all(now[name] == index for name, index in before.items())
    definitions = {d["AttributeName"]: d["AttributeType"] for d in table["Properties"]["AttributeDefinitions"]}
    assert {d["AttributeName"]: d["AttributeType"] for d in RELEASE.table["AttributeDefinitions"]}.items() <= (
        definitions.items()
    )


def lane_of_each(journal: Any) -> dict[str, str]:
    """Each PENDING or FAILED entry's lane as the current code reads it (copier.journal.lane_of)."""
    entries = [e for status in ("PENDING", "FAILED") for e in journal_entries(table_name=TABLE, status=status)]
    return {str(entry["journalSourceId"]): journal.lane_of(entry).value for entry in entries}


def test_the_backlog_0_2_0_left_is_read_in_lanes_a_run_under_way_finishes_and_each_image_set_is_copied_once() -> None:
    """At the deploy: a backfill's entries and an import's after them PENDING (no lane), a FAILED copy, and a
    dispatcher run under way (16 executions waiting for their slots, the pacing item as it left it). The current
    code reads the backfill's entries as bulk and the rest as live, lets 0.2.0's executions finish, labels what
    0.2.0 left PENDING and copies the import before the backfill's rest; `retry` re-admits the failed copy as
    live. Each image set is copied once, and neither lane is late."""
    executions: dict[str, dict[str, Any]] = RELEASE.records["backlog"]["executions"]
    with RELEASE.pipeline_on("backlog", "runUnderWay", RELEASE.resumed("copy", "RouteCopy")) as (pipeline, emulator):
        import copier.journal  # the pipeline's fresh module

        lanes = lane_of_each(copier.journal)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arns = [pipeline.start(execution_input, name=name) for name, execution_input in executions.items()]
        deploy_current_definition(pipeline)
        resumed = [pipeline.wait(arn, history=False).status for arn in arns]
        drained = pipeline.drain_backlog(history=False)
        retried = retry(table_name=TABLE)
        again = pipeline.drain_backlog(history=False)
        progress = backfill_progress(table_name=TABLE, backfill_id="bf") or {}
        copied = {str(e["journalSourceId"]): e.get("lane") for e in journal_entries(table_name=TABLE, status="COPIED")}
        documents = emf_documents(pipeline.logs.getvalue())
        described = [sfn.describe_execution(executionArn=arn)["status"] for arn in arns]
    waiting = {image_set_id for image_set_id, lane in lanes.items() if image_set_id != FAILING}
    assert lanes == {**dict.fromkeys(waiting - {IMPORTED}, "bulk"), IMPORTED: "live", FAILING: "live"}
    assert len(executions) == 16 and resumed == described == ["SUCCEEDED"] * 16
    assert [record.status for record in [*drained, *again]] == ["SUCCEEDED"] * 6
    # The import first among what 0.2.0 left PENDING (a run's slots: the live lane's first), then the backfill's.
    calls = [copy.source_id for copy in sorted(emulator.accepted, key=lambda copy: copy.accepted_at)]
    assert calls[16:] == [IMPORTED, *sorted(waiting - {IMPORTED}), FAILING]
    assert Counter(calls) == Counter([*IN_BACKLOG, IMPORTED, FAILING])  # each once, nothing lost
    assert retried.lanes == {"live": [f"journal#{FAILING}#1"], "bulk": []}
    assert {copied[image_set_id] for image_set_id in waiting - {IMPORTED}} == {"bulk"}  # labelled as read
    assert (copied[IMPORTED], copied[FAILING]) == ("live", "live")
    assert (progress["admitted"], progress["entriesCOPIED"]) == (20, 20)
    labelled = sum(d["LegacyEntriesLabelled"][0] for d in documents if "LegacyEntriesLabelled" in d)
    late = [d[name][0] for d in documents for name in ("LiveBacklogLateSeconds", "BulkBacklogLateSeconds") if name in d]
    assert labelled == len(waiting) == 5
    assert late and max(late) < 60  # 0.2.0's schedule (its dueAt) carried on: no lane late across the deploy


# --- executions of 0.2.0's copy definition still running at the deploy ------------------------------------------
# Its AwaitCopy left the token on the destination's wake item alone (an UpdateItem); the current one leaves it on
# the source's too, in a transaction, and waits before trying again when its write fails. Its executions invoke the
# function version they started with for their steps; the completion queue's consumer (copier.wake) is the latest
# function's: it must wake them, and the current steps still read what their AwaitCopy answers.
def on_previous_definition() -> WorkflowDefinition:
    """The current workflow (environment, table) with 0.2.0's copy definition, from its start."""
    resumed = RELEASE.resumed("copy", "RouteCopy")
    states = json.loads(json.loads(resumed.definition))["States"]
    assert states["AwaitCopy"]["Resource"].endswith(":dynamodb:updateItem.waitForTaskToken")
    return resumed


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
