"""Physical names, derived from where a HealthImagingCopy construct sits in its app.

Some resources are named (the state machines: the function knows their ARNs without depending on them;
the alarms: the key and topic policies name them before they exist; the dashboard; the workflows' log
groups). Their names start with the stack's name, then the construct's path inside the stack, leaving
out `Default` as CDK does for logical ids: two constructs in one stack (two data stores) never collide,
and the app's own construct (`Default`, directly in its stack) keeps the names its stacks always had
(`<stack>-copy`, `<stack>-backfill`, `<stack>-ExecutionsFailed`, ...): renaming a state machine would
replace it, stopping the executions in flight.
"""

from __future__ import annotations

import hashlib
import re

from aws_cdk import Stack
from constructs import Construct

from .metrics import SERVICE

# Step Functions names are at most 80 characters, and "-backfill" follows the prefix.
MAX_PREFIX_LENGTH = 64
UNSAFE = re.compile(r"[^0-9A-Za-z_-]")


def path_in_stack(construct: Construct) -> list[str]:
    """The ids of the construct and its parents below its stack, without `Default`."""
    stack = Stack.of(construct)
    scopes = construct.node.scopes
    below = scopes[scopes.index(stack) + 1 :]
    return [UNSAFE.sub("-", scope.node.id) for scope in below if scope.node.id != "Default"]


def name_prefix(construct: Construct) -> str:
    """`<stack>[-<path in the stack>]`, shortened with a hash of the whole when too long."""
    prefix = "-".join([UNSAFE.sub("-", Stack.of(construct).stack_name), *path_in_stack(construct)])
    if len(prefix) <= MAX_PREFIX_LENGTH:
        return prefix
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:8]
    return f"{prefix[: MAX_PREFIX_LENGTH - 9]}-{digest}"


def output_prefix(construct: Construct) -> str:
    """What a construct's CloudFormation outputs' logical ids start with: its path in the stack, without
    `Default` and without what logical ids cannot hold (empty for the app's own construct)."""
    return "".join(re.sub(r"[^0-9A-Za-z]", "", part) for part in path_in_stack(construct))


def service_name(construct: Construct) -> str:
    """Powertools' service name, the dimension of the function's metrics: its own per construct of a stack
    (alarms must not see another data store's copies); `healthimaging-copy` for the app's own."""
    return "-".join([SERVICE, *path_in_stack(construct)])
