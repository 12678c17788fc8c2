"""Upgrading a deployed stack: the previous releases' templates (both) and 0.1.0's records
(tests/fixtures/<release>/, written by that release's own code: `make upgrade-fixtures`) against the current
code; 0.2.0's records: tests/test_upgrade_from_v0_2_0.py.

The logical ids: CloudFormation replaces a resource whose logical id changes, and a replaced table is a
lost copy journal, a replaced queue lost events, a replaced state machine its executions in flight.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from function_stubs import emf_metrics
from release_fixtures import (
    IDEMPOTENCY_KEY_PREFIX,
    STATEFUL,
    Release,
    deploy_current_definition,
    journal_status,
    table_item,
)
from stack_app import synthesize

from offline.runner import REGION, TABLE
from ops.cli import backfill_progress

pytestmark = pytest.mark.slow

RELEASE = Release("v0.1.0")
# Resources of a previous release the current one removes on purpose, and why. Stateless only: a deploy deletes
# them and loses nothing (the test below refuses a stateful one here).
INTENDED_REMOVALS = {
    "v0.1.0": {
        # The backlog's age alarm, replaced by BacklogLate in 0.2.0: a 1M backfill's age is weeks on time, so the
        # alarm watches how late the oldest copy is instead (docs/operations.md, Alarms).
        "MonitoringBacklogAge056EF81C": "AWS::CloudWatch::Alarm",
    },
    "v0.2.0": {
        # The backlog's lateness alarm, one per lane since lanes: LiveBacklogLate pages (new imports late), and
        # BulkBacklogLate informs (backfills late against their share); docs/operations.md, Alarms.
        "MonitoringBacklogLateC8AD485A": "AWS::CloudWatch::Alarm",
    },
}
STATEFUL_RESOURCES = {"v0.1.0": 8, "v0.2.0": 10}  # 0.2.0 added the completion queue and its DLQ


def current_resources() -> dict[str, Any]:
    resources: dict[str, Any] = synthesize()[1].to_json()["Resources"]
    return resources


# A published version of the function is named by a hash of its code and configuration: each deploy that changes
# them publishes a new one and keeps the one before (DeletionPolicy Retain: executions started on it finish on
# it; docs/operations.md, Upgrading). Its logical id changing is the design, not a replacement.
PUBLISHED_VERSION = "AWS::Lambda::Version"


def release_resources(release: str) -> dict[str, dict[str, str]]:
    return {k: v for k, v in Release(release).logical_ids.items() if v["Type"] != PUBLISHED_VERSION}


@pytest.mark.parametrize("release", ["v0.1.0", "v0.2.0"])
def test_every_resource_of_a_previous_release_keeps_its_logical_id_and_type(release: str) -> None:
    before = {logical_id: resource["Type"] for logical_id, resource in release_resources(release).items()}
    now = {logical_id: resource["Type"] for logical_id, resource in current_resources().items()}
    changed = {k: v for k, v in before.items() if now.get(k) != v}
    assert changed == INTENDED_REMOVALS[release], "renamed or retyped: an upgrade replaces them"
    assert not set(INTENDED_REMOVALS[release]) & set(now)  # removed, not kept under another type
    assert not any(kind in STATEFUL for kind in INTENDED_REMOVALS[release].values())
    # table, admission queue and DLQ, key, 3 log groups, topic (and from 0.2.0 the completion queue and its DLQ)
    assert sum(kind in STATEFUL for kind in before.values()) == STATEFUL_RESOURCES[release]


@pytest.mark.parametrize("release", ["v0.1.0", "v0.2.0"])
def test_what_a_previous_release_kept_on_deletion_is_still_kept(release: str) -> None:
    now = current_resources()
    for logical_id, resource in release_resources(release).items():
        if resource.get("DeletionPolicy") == "Retain":
            assert now[logical_id].get("DeletionPolicy") == "Retain", logical_id
            assert now[logical_id].get("UpdateReplacePolicy") == "Retain", logical_id


# --- records and executions the previous release left: finished by the current code ------------------------------
# The upgrade from 0.1.0 is the one where executions in flight run the new code: 0.1.0's state machines invoke the
# function unqualified. Each test takes a snapshot of the table (and the data store) written by 0.1.0's code
# while an execution waited in a state, starts that execution again from that state on 0.1.0's definition (its
# state payload as 0.1.0 saved it), and lets the current handler finish it. A change that cannot read one of
# these records fails here, naming it in the execution's error.
RECORDS = RELEASE.records
PRIMARY, CONSISTENT, SECOND_STUDY = "1a" * 16, "2b" * 16, "3c" * 16  # tests/upgrade_fixtures.py
BACKFILLED = 55
snapshot, saved_state = RELEASE.snapshot, RELEASE.saved_state
resumed, pipeline_on = RELEASE.resumed, RELEASE.pipeline_on


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
