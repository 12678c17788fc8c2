"""The names the operator CLI takes, found in the deployed stack's CloudFormation outputs.

Each HealthImagingCopy construct publishes its names as outputs (infra/outputs.py) whose keys start with
its path in the stack: `CopyTableName`, `StateMachineArn`, ... for this app's stacks, `ResearchCopyTableName`
for `HealthImagingCopy(stack, "Research")` in a host app. `--stack NAME` names the stack (default: the
HEALTHIMAGING_COPY_STACK environment variable, else the app's stack, `HealthImagingCopy`); `--stack NAME/PATH`
one of several pipelines in it (`Imaging/Research`). A name given as its own option (`--table-name`, ...)
is taken as given, and the stack is not read for it: scripts that pass names keep working without
CloudFormation permissions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

STACK_VARIABLE = "HEALTHIMAGING_COPY_STACK"
DEFAULT_STACK = "HealthImagingCopy"  # infra/settings.py's DEFAULT_STACK_NAME (tests/test_stack_outputs.py)
# What logical ids cannot hold: the construct's path in the stack is written without it (infra/naming.py).
NOT_IN_LOGICAL_IDS = re.compile(r"[^0-9A-Za-z]")


@dataclass(frozen=True)
class StackName:
    """A name of the deployed pipeline: the option that gives it, and the stack output that holds it."""

    option: str
    output: str
    help: str

    @property
    def dest(self) -> str:
        return self.option.removeprefix("--").replace("-", "_")


DATASTORE = StackName("--datastore-id", "DatastoreId", "the data store it copies in")
STATE_MACHINE = StackName("--state-machine-arn", "StateMachineArn", "the copy state machine")
BACKFILL_STATE_MACHINE = StackName("--state-machine-arn", "BackfillStateMachineArn", "the backfill state machine")
TABLE = StackName("--table-name", "CopyTableName", "the table of the copy journal and copy records")
DEAD_LETTER_QUEUE = StackName("--queue-url", "DeadLetterQueueUrl", "the admission dead-letter queue")
ADMISSION_QUEUE = StackName("--admission-queue-url", "AdmissionQueueUrl", "the admission queue")
COMPLETION_DEAD_LETTER_QUEUE = StackName(
    "--completion-dead-letter-queue-url", "CompletionDeadLetterQueueUrl", "the completion dead-letter queue"
)
COMPLETION_QUEUE = StackName("--completion-queue-url", "CompletionQueueUrl", "the completion queue")
FUNCTION = StackName("--function-name", "CopyFunctionName", "the copy function")
ALARM_TOPIC = StackName("--alarm-topic-arn", "AlarmTopicArn", "the topic the alarms notify")
# Outputs every pipeline has: how a pipeline is recognised among a stack's outputs.
PIPELINE_OUTPUTS = (TABLE.output, STATE_MACHINE.output, BACKFILL_STATE_MACHINE.output)


class StackNamesError(Exception):
    """The names cannot be found: the message says what is missing and what to give instead."""


def add_stack_options(parser: Any, *names: StackName) -> None:
    """`--stack`, and an option for each name, which overrides the stack's output."""
    parser.add_argument(
        "--stack",
        metavar="NAME[/PATH]",
        help=f"the stack whose outputs name the pipeline (default: ${STACK_VARIABLE}, else {DEFAULT_STACK}); "
        "NAME/PATH: the pipeline at that construct path, when the stack holds several",
    )
    for name in names:
        parser.add_argument(
            name.option, dest=name.dest, help=f"{name.help} (default: the stack's output {name.output})"
        )


def names_of(args: Any, names: Iterable[StackName], *, client_factory: Any) -> dict[StackName, str]:
    """Each name: its option's value if given, else the stack's output (one DescribeStacks for all of them)."""
    found = {name: getattr(args, name.dest) for name in names if getattr(args, name.dest, None)}
    missing = [name for name in names if name not in found]
    if missing:
        stack = args.stack or os.environ.get(STACK_VARIABLE) or DEFAULT_STACK
        outputs = pipeline_outputs(stack, client=client_factory())
        for name in missing:
            if name.output not in outputs:
                raise StackNamesError(
                    f"stack {stack} has no output {name.output} (a release before it published one?): give"
                    f" {name.option}, or deploy this release"
                )
            found[name] = outputs[name.output]
    return found


def pipeline_outputs(stack: str, *, client: Any) -> dict[str, str]:
    """The outputs of the one pipeline `stack` names (`NAME` or `NAME/PATH`), by their names without the prefix."""
    stack_name, _, path = stack.partition("/")
    try:
        (described,) = client.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = error.response["Error"].get("Message", "")
        if error.response["Error"]["Code"] == "ValidationException" and "does not exist" in message:
            raise StackNamesError(
                f"no stack {stack_name} in {client.meta.region_name}: name it with --stack NAME (or {STACK_VARIABLE});"
                " AWS_PROFILE and AWS_REGION choose the account and Region"
            ) from None
        raise
    outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
    suffix = PIPELINE_OUTPUTS[0]
    prefixes = sorted(
        key.removesuffix(suffix)
        for key in outputs
        if key.endswith(suffix) and all(key.removesuffix(suffix) + name in outputs for name in PIPELINE_OUTPUTS)
    )
    status = described.get("StackStatus", "")
    if not prefixes:
        raise StackNamesError(
            f"stack {stack_name} ({status}) has no healthimaging-copy outputs ({', '.join(PIPELINE_OUTPUTS)},"
            " each under its construct's path): is it the stack the pipeline was deployed in, and deployed?"
        )
    if path:
        prefix = "".join(NOT_IN_LOGICAL_IDS.sub("", part) for part in path.split("/") if part != "Default")
        if prefix not in prefixes:
            raise StackNamesError(
                f"stack {stack_name} has no pipeline at {path}; it holds: {_listed(stack_name, prefixes)}"
            )
    elif len(prefixes) > 1:
        choices = _listed(stack_name, prefixes)
        raise StackNamesError(f"stack {stack_name} holds {len(prefixes)} pipelines: choose one with --stack {choices}")
    else:
        (prefix,) = prefixes
    return {key.removeprefix(prefix): value for key, value in outputs.items() if key.startswith(prefix)}


def _listed(stack_name: str, prefixes: list[str]) -> str:
    return " or ".join(f"{stack_name}/{prefix}" if prefix else stack_name for prefix in prefixes)
