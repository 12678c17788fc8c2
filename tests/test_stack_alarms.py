"""Alarms reach someone: CloudWatch may publish to the stack's topic and use the key that encrypts it,
on behalf of this stack's alarms only. Decided by tests/policy_evaluation.py on the synthesized
policies (topic policies and key policy), as AWS would for CloudWatch's request."""

from __future__ import annotations

from typing import Any

import pytest
from policy_evaluation import Decision, Request, decide
from stack_app import ACCOUNT, CUSTOM_SETTINGS, REGION, TOPIC_ARN, resolved, resources, synthesize

pytestmark = pytest.mark.slow
CLOUDWATCH = "cloudwatch.amazonaws.com"
OTHER_ACCOUNT = "444455556666"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    _, template = synthesize()
    return template.to_json()


def _refs(template: dict[str, Any]) -> dict[str, str]:
    """Physical names of what the alarm path refers to, as CloudFormation would return them."""
    refs = {}
    for logical_id in resources(template, "AWS::SNS::Topic"):
        refs[logical_id] = f"arn:aws:sns:{REGION}:{ACCOUNT}:{logical_id}"
    for logical_id in resources(template, "AWS::KMS::Key"):
        refs[f"{logical_id}.Arn"] = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical_id}"
    for logical_id, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        refs[f"{logical_id}.Arn"] = _alarm_arn(alarm["Properties"]["AlarmName"])
    return refs


def _alarm_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{account}:alarm:{name}"


def _cloudwatch(action: str, resource: str, alarm_arn: str, *, secure: bool = True) -> Request:
    account = alarm_arn.split(":")[4]
    return Request(
        principal_type="Service",
        principal=CLOUDWATCH,
        action=action,
        resource=resource,
        context={"aws:SourceAccount": account, "aws:SourceArn": alarm_arn, "aws:SecureTransport": str(secure).lower()},
    )


def _alarm_paths(template: dict[str, Any]) -> list[tuple[str, str, list[Any], str, list[Any]]]:
    """(alarm ARN, topic ARN, topic policies, key ARN, key policies) for every alarm action."""
    refs = _refs(template)
    topics = resources(template, "AWS::SNS::Topic")
    topic_policies = list(resources(template, "AWS::SNS::TopicPolicy").values())
    keys = resources(template, "AWS::KMS::Key")
    paths = []
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        alarm_arn = _alarm_arn(alarm["Properties"]["AlarmName"])
        for action in alarm["Properties"].get("AlarmActions", []):  # none: counted by the tests
            topic_id = action["Ref"]  # a topic this stack creates (see the bring-your-own test)
            policies = [
                resolved(p["Properties"]["PolicyDocument"], refs)
                for p in topic_policies
                if {"Ref": topic_id} in p["Properties"]["Topics"]
            ]
            key_id = topics[topic_id]["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
            paths.append(
                (
                    alarm_arn,
                    refs[topic_id],
                    policies,
                    refs[f"{key_id}.Arn"],
                    [resolved(keys[key_id]["Properties"]["KeyPolicy"], refs)],
                )
            )
    return paths


# Alarms that inform without paging (no action): the bulk lane late against its share.
INFORMATION = ("BulkBacklogLate",)


def _alarm_arns(template: dict[str, Any]) -> set[str]:
    """The paging alarms' ARNs: every alarm but the information ones."""
    return {
        _alarm_arn(alarm["Properties"]["AlarmName"])
        for alarm in resources(template, "AWS::CloudWatch::Alarm").values()
        if not alarm["Properties"]["AlarmName"].endswith(tuple(f"-{name}" for name in INFORMATION))
    }


def test_every_alarm_notifies_an_encrypted_topic_of_the_stack(template: dict[str, Any]) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    # Alarms with an action, not actions: two on one alarm must not hide another alarm that has none.
    actions = {
        alarm["Properties"]["AlarmName"].split("-")[-1]: len(alarm["Properties"].get("AlarmActions", []))
        for alarm in alarms
    }
    assert sorted(actions.values()) == [0] + 12 * [1]
    assert [name for name, count in actions.items() if not count] == list(INFORMATION)
    assert {path[0] for path in _alarm_paths(template)} == _alarm_arns(template)  # each to a topic of the stack


def test_cloudwatch_may_publish_each_alarm_to_its_topic_and_use_the_topic_key(template: dict[str, Any]) -> None:
    allowed = set()
    for alarm_arn, topic_arn, topic_policies, key_arn, key_policies in _alarm_paths(template):
        assert decide(topic_policies, _cloudwatch("sns:Publish", topic_arn, alarm_arn)) == Decision.ALLOW, alarm_arn
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert decide(key_policies, _cloudwatch(action, key_arn, alarm_arn)) == Decision.ALLOW, (alarm_arn, action)
        allowed.add(alarm_arn)
    assert len(allowed) == 12 and allowed == _alarm_arns(template)  # every alarm decided, none left out


def test_cloudwatch_may_not_act_for_alarms_of_other_stacks_or_accounts(template: dict[str, Any]) -> None:
    informing = [_alarm_arn(f"HealthImagingCopy-{name}") for name in INFORMATION]  # ours, but it pages nobody
    for alarm_arn, topic_arn, topic_policies, key_arn, key_policies in _alarm_paths(template):
        name = alarm_arn.rsplit(":", 1)[1]
        for stranger in informing:
            assert decide(topic_policies, _cloudwatch("sns:Publish", topic_arn, stranger)) != Decision.ALLOW
        for stranger in (_alarm_arn("SomeoneElses-Alarm"), _alarm_arn(name, OTHER_ACCOUNT)):
            assert decide(topic_policies, _cloudwatch("sns:Publish", topic_arn, stranger)) != Decision.ALLOW
            for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"):
                assert decide(key_policies, _cloudwatch(action, key_arn, stranger)) != Decision.ALLOW
        # The topic's enforce_ssl Deny still holds, for CloudWatch too.
        insecure = _cloudwatch("sns:Publish", topic_arn, alarm_arn, secure=False)
        assert decide(topic_policies, insecure) == Decision.EXPLICIT_DENY


def test_a_topic_brought_by_the_user_gets_the_alarms_and_no_grant_on_the_stack_key() -> None:
    """The user's topic is theirs (its policy and key are theirs to grant): the stack puts no policy on it and
    lets CloudWatch use its own key for no alarm, whatever the grant's spelling (a list of principals, "*")."""
    _, template = synthesize(**CUSTOM_SETTINGS)  # alarmTopicArn: TOPIC_ARN
    raw = template.to_json()
    assert resources(raw, "AWS::SNS::Topic") == resources(raw, "AWS::SNS::TopicPolicy") == {}
    alarms = resources(raw, "AWS::CloudWatch::Alarm").values()
    paging = [alarm for alarm in alarms if not alarm["Properties"]["AlarmName"].endswith(INFORMATION)]
    assert [alarm["Properties"]["AlarmActions"] for alarm in paging] == 12 * [[TOPIC_ARN]] and len(alarms) == 13
    refs = _refs(raw)
    ((key_id, key),) = resources(raw, "AWS::KMS::Key").items()
    key_policies = [resolved(key["Properties"]["KeyPolicy"], refs)]
    decided = []
    for alarm_arn in _alarm_arns(raw):
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            request = _cloudwatch(action, refs[f"{key_id}.Arn"], alarm_arn)
            assert decide(key_policies, request) == Decision.IMPLICIT_DENY, (alarm_arn, action)
        decided.append(alarm_arn)
    assert len(decided) == 12
