"""Events reach the admission queue, and only this stack's rule's: decided by tests/policy_evaluation.py
on the synthesized queue and key policies, as SQS and KMS would for EventBridge's requests."""

from __future__ import annotations

from typing import Any

import pytest
from policy_evaluation import Decision, Request, decide
from stack_app import ACCOUNT, REGION, resolved, resources, synthesize

pytestmark = pytest.mark.slow
EVENTS = "events.amazonaws.com"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    _, template = synthesize()
    return template.to_json()


def _arns(template: dict[str, Any]) -> dict[str, str]:
    refs = {}
    for logical_id in resources(template, "AWS::SQS::Queue"):
        refs[f"{logical_id}.Arn"] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical_id}"
    for logical_id in resources(template, "AWS::Events::Rule"):
        refs[f"{logical_id}.Arn"] = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{logical_id}"
    for logical_id in resources(template, "AWS::KMS::Key"):
        refs[f"{logical_id}.Arn"] = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical_id}"
    return refs


def _events(action: str, resource: str, rule_arn: str) -> Request:
    return Request(
        principal_type="Service",
        principal=EVENTS,
        action=action,
        resource=resource,
        context={"aws:SourceArn": rule_arn, "aws:SourceAccount": rule_arn.split(":")[4], "aws:SecureTransport": "true"},
    )


def test_only_the_import_rule_may_send_to_the_admission_queue_and_use_its_key(template: dict[str, Any]) -> None:
    refs = _arns(template)
    (queue_id,) = [q for q in resources(template, "AWS::SQS::Queue") if "AdmissionQueue" in q]
    queue_arn = refs[f"{queue_id}.Arn"]
    (policy,) = [
        resolved(p["Properties"]["PolicyDocument"], refs)
        for p in resources(template, "AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
    ]
    (import_rule,) = [
        refs[f"{rule_id}.Arn"]
        for rule_id, rule in resources(template, "AWS::Events::Rule").items()
        if "Image Set Created" in rule["Properties"].get("EventPattern", {}).get("detail-type", [])
    ]
    (completion_rule,) = [
        refs[f"{rule_id}.Arn"]
        for rule_id, rule in resources(template, "AWS::Events::Rule").items()
        if "Image Set Copied" in rule["Properties"].get("EventPattern", {}).get("detail-type", [])
    ]
    ((key_id, key),) = resources(template, "AWS::KMS::Key").items()
    key_policy = resolved(key["Properties"]["KeyPolicy"], refs)

    assert decide([policy], _events("sqs:SendMessage", queue_arn, import_rule)) == Decision.ALLOW
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert decide([key_policy], _events(action, refs[f"{key_id}.Arn"], import_rule)) == Decision.ALLOW
    strangers = (
        f"arn:aws:events:{REGION}:444455556666:rule/someone-elses",  # another account's rule
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/another-rule",  # another rule of this account
        completion_rule,  # the stack's own copy outcome events: never admitted (copy storm)
    )
    for stranger in strangers:
        assert decide([policy], _events("sqs:SendMessage", queue_arn, stranger)) == Decision.EXPLICIT_DENY
