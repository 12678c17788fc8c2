"""Upgrading a deployed stack: the previous release's template and records (tests/fixtures/v0.1.0/, written
by that release's own code: `make upgrade-fixtures`) against the current code.

The logical ids: CloudFormation replaces a resource whose logical id changes, and a replaced table is a
lost copy journal, a replaced queue lost events, a replaced state machine its executions in flight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stack_app import synthesize

pytestmark = pytest.mark.slow

RELEASE = Path(__file__).resolve().parent / "fixtures" / "v0.1.0"
STATEFUL = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::KMS::Key", "AWS::Logs::LogGroup", "AWS::SNS::Topic")


def release_resources() -> dict[str, dict[str, str]]:
    resources: dict[str, dict[str, str]] = json.loads((RELEASE / "logical-ids.json").read_text())
    return resources


def current_resources() -> dict[str, Any]:
    resources: dict[str, Any] = synthesize()[1].to_json()["Resources"]
    return resources


def test_every_resource_of_the_previous_release_keeps_its_logical_id_and_type() -> None:
    before = {logical_id: resource["Type"] for logical_id, resource in release_resources().items()}
    now = {logical_id: resource["Type"] for logical_id, resource in current_resources().items()}
    assert {k: v for k, v in before.items() if now.get(k) != v} == {}, "renamed or retyped: an upgrade replaces them"
    assert sum(kind in STATEFUL for kind in before.values()) == 8  # table, 2 queues, key, 3 log groups, topic


def test_what_the_previous_release_kept_on_deletion_is_still_kept() -> None:
    now = current_resources()
    for logical_id, resource in release_resources().items():
        if resource.get("DeletionPolicy") == "Retain":
            assert now[logical_id].get("DeletionPolicy") == "Retain", logical_id
            assert now[logical_id].get("UpdateReplacePolicy") == "Retain", logical_id
