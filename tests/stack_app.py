"""The CDK app, synthesized in process once per distinct context for the whole session (a synth
takes seconds), shared by the tests/test_stack*.py modules. No bundling: the function's code
asset is not built here (tests/test_function_bundle.py builds it)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_cdk.assertions import Template

from infra.app import build_app
from infra.stack import CopyPipelineStack
from offline.runner import resolve
from offline.seed import DATASTORE_ID as DS

CONTEXT: dict[str, Any] = {"datastoreId": DS, "aws:cdk:bundling-stacks": []}
# What the intrinsic functions of an environment-agnostic template resolve to in these tests.
ACCOUNT = "111122223333"
REGION = "eu-west-1"
PSEUDO_PARAMETERS = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}


def synthesize(**settings: Any) -> tuple[CopyPipelineStack, Template]:
    """The stack and its template for CONTEXT plus these settings. cdk-nag's AwsSolutions and HIPAA
    Security packs run on this synth: a finding that is not acknowledged makes it raise."""
    return _synthesize(json.dumps({**CONTEXT, **settings}, sort_keys=True))


@cache
def _synthesize(context: str) -> tuple[CopyPipelineStack, Template]:
    app = build_app(json.loads(context))
    (stack,) = (child for child in app.node.children if isinstance(child, CopyPipelineStack))
    return stack, Template.from_stack(stack)


def resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {logical_id: r for logical_id, r in template["Resources"].items() if r["Type"] == kind}


def resolved(value: Any, refs: dict[str, str]) -> Any:
    """value with every intrinsic function (Ref, Fn::GetAtt, Fn::Join) resolved, at any depth."""
    value = resolve(value, {**PSEUDO_PARAMETERS, **refs})
    if isinstance(value, dict):
        return {k: resolved(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(v, refs) for v in value]
    return value
