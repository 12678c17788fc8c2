"""Reads what the local runner needs from the CDK app's synthesized template: the state machine's
definition, the function's environment and the table's keys and indexes, with the intrinsic
functions they use resolved for a local account.

The template comes from the CDK app's entry point run as the CDK CLI runs it (`synthesize`: app.py in a
process of its own), or from a caller that synthesized it (tests/workflow.py, in process): offline/ never
imports infra/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parent.parent / "app.py"  # the CDK app's entry point (cdk.json's "app")


def synthesize(context: dict[str, Any]) -> dict[str, Any]:
    """The first stack's CloudFormation template for these context settings (no bundling): app.py run as
    `cdk synth` runs it, the context in CDK_CONTEXT_JSON, the cloud assembly written to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="cdk.out-") as assembly:
        environment = {
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            **os.environ,
            "CDK_CONTEXT_JSON": json.dumps({**context, "aws:cdk:bundling-stacks": []}),
            "CDK_OUTDIR": assembly,
        }
        run = subprocess.run(
            [sys.executable, str(APP)], cwd=APP.parent, env=environment, capture_output=True, text=True, check=False
        )
        if run.returncode != 0:
            raise RuntimeError(f"{APP.name} did not synthesize (exit {run.returncode}): {run.stderr or run.stdout}")
        manifest = json.loads(Path(assembly, "manifest.json").read_text())
        stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
        template: dict[str, Any] = json.loads(Path(assembly, stacks[0]["properties"]["templateFile"]).read_text())
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


def function_refs(function_arn: str, function_logical_id: str, version_logical_id: str | None) -> dict[str, str]:
    """The function's ARN, and its published version's (version 1 here), as Fn::GetAtt and Ref resolve them."""
    refs = {f"{function_logical_id}.Arn": function_arn}
    if version_logical_id:
        refs[version_logical_id] = f"{function_arn}:1"
    return refs


def state_machine(template: dict[str, Any], role: str = "copy") -> tuple[str, dict[str, Any]]:
    """The logical id and resource of one of the stack's state machines: "copy" (CopyWorkflow) or
    "backfill" (BackfillWorkflow), told apart by the end of the name the stack gives them."""
    found = [
        (logical_id, machine)
        for logical_id, machine in _resources(template, "AWS::StepFunctions::StateMachine").items()
        if str(machine["Properties"].get("StateMachineName", "")).endswith(f"-{role}")
    ]
    if len(found) != 1:
        raise ValueError(f"expected one {role} state machine in the template, found {len(found)}")
    return found[0]


@dataclass
class WorkflowDefinition:
    """What the runner needs from a template: the state machines' ASL and the function's environment."""

    definition: str  # the copy workflow's
    environment: dict[str, str]
    function_logical_id: str
    table_logical_id: str
    table_schema: dict[str, Any]  # keys and indexes, as CreateTable takes them
    backfill_definition: str | None = None
    backfill_name: Any = None  # the backfill state machine's name, maybe with intrinsic functions
    version_logical_id: str | None = None  # the published version the state machines invoke (none before 0.2.0)

    def function_refs(self, function_arn: str) -> dict[str, str]:
        """What the function's ARN and its version's resolve to, for resolve()."""
        return function_refs(function_arn, self.function_logical_id, self.version_logical_id)

    @classmethod
    def from_template(cls, template: dict[str, Any]) -> WorkflowDefinition:
        functions = _resources(template, "AWS::Lambda::Function")
        tables = _resources(template, "AWS::DynamoDB::Table")
        if len(functions) != 1 or len(tables) != 1:
            raise ValueError("expected one function and one table in the template")
        ((function_id, function),) = functions.items()
        ((table_id, table),) = tables.items()
        _, machine = state_machine(template, "copy")
        machines = _resources(template, "AWS::StepFunctions::StateMachine")
        backfill = state_machine(template, "backfill")[1] if len(machines) > 1 else None
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
            json.dumps(backfill["Properties"]["DefinitionString"]) if backfill else None,
            backfill["Properties"]["StateMachineName"] if backfill else None,
            next(iter(_resources(template, "AWS::Lambda::Version")), None),
        )
