"""Every command the README and docs/ show runs as written: each `healthimaging-copy` (or `python -m ops.cli`) line
parses with the CLI's own parser and passes its checks (no AWS call), each `make` target exists, each `aws` line
names a real operation and real parameters of the service's model (and, in a code block, all it requires), each
`npx cdk` line a CDK command and only settings the app knows, each `python -m` module exists."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from infra.settings import SETTING_NAMES
from ops.cli import build_parser, check

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`]+)`")
COMMANDS = ("healthimaging-copy", "python -m ops.cli", "make", "aws", "npx cdk", "python -m")
SHELL_BLOCKS = ("bash", "sh", "shell", "console")  # untyped blocks hold pictures
# The AWS CLI's own options, valid with every operation, and those it adds to operations that paginate.
AWS_GLOBAL_OPTIONS = {"--query", "--output", "--region", "--profile", "--no-cli-pager", "--cli-binary-format"}
AWS_PAGINATION_OPTIONS = {"--max-items", "--starting-token", "--page-size", "--no-paginate"}
# AWS CLI commands that are not API operations (customizations), with the options the docs may use.
AWS_CUSTOM_COMMANDS = {("logs", "tail"): {"--since", "--follow", "--filter-pattern", "--format"}}
CDK_COMMANDS = {"bootstrap", "deploy", "synth", "diff", "destroy", "list", "ls"}
CDK_OWN_CONTEXT = re.compile(r"^(aws:cdk:|@aws-cdk/)")


@dataclass(frozen=True)
class Command:
    page: str
    line: str
    in_block: bool

    def __str__(self) -> str:
        return f"{self.page}: {self.line}"


def commands(page: Path) -> list[Command]:
    """The command lines of a page: in shell code blocks (continuations joined, comments dropped), and the
    inline code spans that are whole commands of ours (`healthimaging-copy ...`, `make ...`, `aws ...`)."""
    text = page.read_text()
    found = []
    for language, body in BLOCK.findall(text):
        if language not in SHELL_BLOCKS:
            continue
        for raw in body.replace("\\\n", " ").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line.startswith(COMMANDS):
                found.append(Command(page.name, line, in_block=True))
    for span in (" ".join(span.split()) for span in INLINE.findall(BLOCK.sub("", text))):
        if span.startswith(tuple(f"{prefix} " for prefix in COMMANDS if prefix != "python -m")):
            found.append(Command(page.name, span, in_block=False))
    return found


def variants(tokens: list[str]) -> list[list[str]]:
    """A command with its optional `[...]` parts left out, and with them given."""
    without, within, depth = [], [], 0
    for token in tokens:
        opens, closes = token.startswith("["), token.endswith("]")
        depth += opens
        bare = token.removeprefix("[" if opens else "").removesuffix("]" if closes else "")
        if bare:
            within.append(bare)
            if not depth:
                without.append(bare)
        depth -= closes
    return [without, within] if without != within else [without]


def problems_of_ours(tokens: list[str]) -> list[str]:
    """What the CLI's parser and checks refuse (argparse prints its usage and exits 2; `--help` exits 0)."""
    parser = build_parser()
    refused = io.StringIO()
    try:
        with contextlib.redirect_stderr(refused), contextlib.redirect_stdout(io.StringIO()):
            check(parser.parse_args(tokens), parser)
    except SystemExit as exit_:
        return [refused.getvalue().strip().splitlines()[-1]] if exit_.code else []
    return []


def problems_of_make(tokens: list[str]) -> list[str]:
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", (ROOT / "Makefile").read_text(), re.MULTILINE))
    named = [token for token in tokens if "=" not in token and not token.startswith("-")]
    return [f"no Makefile target {target}" for target in named if target not in targets] or (
        [] if named else ["no target named"]
    )


def problems_of_aws(tokens: list[str], *, whole: bool) -> list[str]:
    service_name, operation_cli, *rest = tokens
    options = [token.split("=", 1)[0] for token in rest if token.startswith("--")]
    custom = AWS_CUSTOM_COMMANDS.get((service_name, operation_cli))
    if custom is not None:
        known = custom | AWS_GLOBAL_OPTIONS
        return [f"aws {service_name} {operation_cli} has no {o}" for o in options if o not in known]
    session = botocore.session.get_session()
    if service_name not in session.get_available_services():
        return [f"no AWS service {service_name}"]
    model = session.get_service_model(service_name)
    operation = next((op for op in model.operation_names if xform_name(op, "-") == operation_cli), None)
    if operation is None:
        return [f"aws {service_name} has no operation {operation_cli}"]
    shape = model.operation_model(operation).input_shape
    members = {f"--{xform_name(name, '-')}": member for name, member in (shape.members if shape else {}).items()}
    known = {*members, *AWS_GLOBAL_OPTIONS}
    known |= {f"--no-{option[2:]}" for option, member in members.items() if member.type_name == "boolean"}
    try:
        session.get_paginator_model(service_name).get_paginator(operation)
        known |= AWS_PAGINATION_OPTIONS  # the AWS CLI paginates this operation itself
    except ValueError:
        pass
    found = [f"aws {service_name} {operation_cli} has no {o}" for o in options if o not in known]
    if whole:
        required = shape.required_members if shape else []
        given = set(options)
        found += [
            f"aws {service_name} {operation_cli} needs --{xform_name(m, '-')}"
            for m in required
            if f"--{xform_name(m, '-')}" not in given
        ]
    return found


def problems_of_cdk(tokens: list[str]) -> list[str]:
    if not tokens or tokens[0] not in CDK_COMMANDS:
        return [f"not a CDK command: {tokens[:1]}"]
    found = []
    for option, value in zip(tokens, [*tokens[1:], ""], strict=True):
        if option in ("-c", "--context"):
            key = value.split("=", 1)[0]
            if key not in (*SETTING_NAMES, "stacks") and not CDK_OWN_CONTEXT.match(key):
                found.append(f"-c {key}: not a setting (docs/configuration.md) nor one of CDK's")
    return found


def problems(command: Command) -> list[str]:
    tokens = shlex.split(command.line)
    while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):  # VARIABLE=value before the command
        tokens.pop(0)
    found: list[str] = []
    for words in variants(tokens):
        if words[0] == "healthimaging-copy":
            found += problems_of_ours(words[1:])
        elif words[:3] == ["python", "-m", "ops.cli"]:
            found += problems_of_ours(words[3:])
        elif words[0] == "make":
            found += problems_of_make(words[1:])
        elif words[0] == "aws":
            found += problems_of_aws(words[1:], whole=command.in_block)
        elif words[:2] == ["npx", "cdk"]:
            found += problems_of_cdk(words[2:])
        elif words[:2] == ["python", "-m"] and importlib.util.find_spec(words[2]) is None:
            found.append(f"no module {words[2]}")
    return sorted(set(found))


EVERY_COMMAND = [command for page in PAGES for command in commands(page)]


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=str)
def test_every_command_in_the_docs_runs_as_written(command: Command) -> None:
    assert problems(command) == [], command.line


def test_the_commands_are_found_and_a_broken_one_is_caught() -> None:
    kinds = Counter(command.line.split()[0] for command in EVERY_COMMAND)
    assert kinds["healthimaging-copy"] >= 20 and kinds["make"] >= 5 and kinds["aws"] >= 3 and kinds["npx"] >= 1, kinds
    broken = {
        "healthimaging-copy retry --status faild": "invalid choice: 'FAILD'",
        "healthimaging-copy backfill start --id spring": "give exactly one of a createdAt range",
        "healthimaging-copy list --table-nam x --status failed": "unrecognized arguments",
        "make deplyo": "no Makefile target deplyo",
        "aws stepfunctions describe-execution": "needs --execution-arn",
        "aws stepfunctions describe-execution --execution-arn a --max-items 1": "has no --max-items",
        "aws sqs get-queue-attributes --queue-url u --attribute-name All": "has no --attribute-name",
        "npx cdk deploy -c copyRatePerSecnd=10": "-c copyRatePerSecnd: not a setting",
        "python -m benchmarks.scael --quick": "no module benchmarks.scael",
    }
    for line, problem in broken.items():
        assert problem in " ".join(problems(Command("test", line, in_block=True))), line
    assert variants(["list", "[--since", "x]", "[--watch]"]) == [["list"], ["list", "--since", "x", "--watch"]]
    assert isinstance(build_parser(), argparse.ArgumentParser)
