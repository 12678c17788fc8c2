"""Reads what the local runner needs from the CDK app's synthesized template: the state machine's
definition, the function's environment and the table's keys and indexes, with the intrinsic
functions they use resolved for a local account."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any


def synthesize(context: dict[str, Any]) -> dict[str, Any]:
    """The first stack's CloudFormation template for these context settings (no bundling)."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app import build_app  # noqa: PLC0415 (jsii starts node: only when asked)

    app = build_app({**context, "aws:cdk:bundling-stacks": []}, nag=False)
    template: dict[str, Any] = app.synth().stacks[0].template
    return template


def _resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def resolve(value: Any, refs: dict[str, str]) -> Any:
    """Resolve the intrinsic functions a definition or environment uses."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref":
            return refs[argument]
        if name == "Fn::GetAtt":
            return refs[f"{argument[0]}.{argument[1]}"]
        if name == "Fn::Join":
            return argument[0].join(str(resolve(part, refs)) for part in argument[1])
    return value


@dataclass
class WorkflowDefinition:
    """What the runner needs from a template: the ASL and the function's environment."""

    definition: str
    environment: dict[str, str]
    function_logical_id: str
    table_logical_id: str
    table_schema: dict[str, Any]  # keys and indexes, as CreateTable takes them

    @classmethod
    def from_template(cls, template: dict[str, Any]) -> WorkflowDefinition:
        machines = _resources(template, "AWS::StepFunctions::StateMachine")
        functions = _resources(template, "AWS::Lambda::Function")
        tables = _resources(template, "AWS::DynamoDB::Table")
        if len(machines) != 1 or len(functions) != 1 or len(tables) != 1:
            raise ValueError("expected one state machine, one function and one table in the template")
        ((function_id, function),) = functions.items()
        ((table_id, table),) = tables.items()
        ((_, machine),) = machines.items()
        return cls(
            json.dumps(machine["Properties"]["DefinitionString"]),
            function["Properties"]["Environment"]["Variables"],
            function_id,
            table_id,
            {
                name: table["Properties"][name]
                for name in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes")
                if name in table["Properties"]
            },
        )
