"""The CDK app, synthesized in process once per distinct context for the whole session (a synth
takes seconds), shared by the tests/test_stack*.py modules; and a host app's stack holding two
HealthImagingCopy constructs, once. No bundling: the function's code asset is not built here
(tests/test_function_bundle.py builds it)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks

from infra.app import build_app
from infra.healthimaging_copy import HealthImagingCopy
from infra.stack import CopyPipelineStack
from offline.seed import DATASTORE_ID as DS

CONTEXT: dict[str, Any] = {"datastoreId": DS, "aws:cdk:bundling-stacks": []}
# What the intrinsic functions of an environment-agnostic template resolve to in these tests.
ACCOUNT = "111122223333"
REGION = "eu-west-1"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/HealthImagingCopy/0f1e2d3c-1111-2222-3333-444455556666"
PSEUDO_PARAMETERS = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::StackId": STACK_ID,
}
# Settings other than the defaults, in one synth shared by the tests that need them.
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:oncall"
CUSTOM_SETTINGS: dict[str, Any] = {
    "alarmTopicArn": TOPIC_ARN,
    "datastoreKmsKeyArn": KEY_ARN,
    "logRetentionDays": 90,
    "reservedConcurrency": 10,
}


def synthesize(**settings: Any) -> tuple[CopyPipelineStack, Template]:
    """The stack and its template for CONTEXT plus these settings. cdk-nag's AwsSolutions and HIPAA
    Security packs run on this synth: a finding that is not acknowledged makes it raise."""
    return _synthesize(json.dumps({**CONTEXT, **settings}, sort_keys=True))


@cache
def _synthesize(context: str) -> tuple[CopyPipelineStack, Template]:
    app = build_app(json.loads(context))
    (stack,) = (child for child in app.node.children if isinstance(child, CopyPipelineStack))
    return stack, Template.from_stack(stack)


FIRST, SECOND = "a" * 32, "b" * 32
NO_BUNDLING = {"aws:cdk:bundling-stacks": []}


@cache
def two_in_one_stack() -> tuple[cdk.Stack, HealthImagingCopy, HealthImagingCopy, dict[str, Any]]:
    """Two data stores' pipelines in one stack of a host app, with cdk-nag's packs: synth raises on a finding
    that is not acknowledged."""
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Imaging", env=cdk.Environment(account="111122223333", region="eu-west-1"))
    research = HealthImagingCopy(stack, "Research", datastore_id=FIRST)
    clinical = HealthImagingCopy(stack, "Clinical", datastore_id=SECOND, copy_policy="merge-into-primary")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), HIPAASecurityChecks(app))
    template = app.synth().get_stack_by_name("Imaging").template
    return stack, research, clinical, template


def resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {logical_id: r for logical_id, r in template["Resources"].items() if r["Type"] == kind}


def resolved(value: Any, refs: dict[str, str], mappings: dict[str, Any] | None = None) -> Any:
    """value with its intrinsic functions resolved at any depth: Ref and Fn::GetAtt from refs (plus the
    pseudo parameters above), Fn::FindInMap from the template's mappings, Fn::Join/Select/Split."""
    refs = {**PSEUDO_PARAMETERS, **refs}
    if isinstance(value, list):
        return [resolved(v, refs, mappings) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref":
            return refs[argument]
        if name == "Fn::GetAtt":
            return refs[f"{argument[0]}.{argument[1]}"]
        if name.startswith("Fn::"):
            argument = resolved(argument, refs, mappings)
        if name == "Fn::Join":
            return argument[0].join(argument[1])
        if name == "Fn::Select":
            return argument[1][int(argument[0])]
        if name == "Fn::Split":
            return argument[1].split(argument[0])
        if name == "Fn::FindInMap":
            return (mappings or {})[argument[0]][argument[1]][argument[2]]
    return {k: resolved(v, refs, mappings) for k, v in value.items()}
