"""Decides one request against resource policies (SNS topic policies, KMS key policies) the way
AWS documents it: an explicit Deny wins, otherwise an Allow, otherwise an implicit deny.

No library on PyPI does this offline for resource policies with service principals and conditions
(moto's evaluator ignores service principals and turns an unmet condition on an Allow into a Deny;
policyglass needs pydantic 1). Only what this stack's policies use is implemented; anything else
(NotPrincipal, NotAction, another condition operator, ForAnyValue...) raises, so a policy this cannot
read fails the test instead of passing it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Decision(Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True)
class Request:
    principal_type: str  # "Service" or "AWS"
    principal: str  # e.g. "cloudwatch.amazonaws.com", or an IAM ARN
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def decide(policies: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    allowed = False
    for policy in policies:
        for statement in _as_list(policy["Statement"]):
            if not _applies(statement, request):
                continue
            if statement["Effect"] == "Deny":
                return Decision.EXPLICIT_DENY
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    unsupported = set(statement) - {"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}
    if unsupported:
        raise NotImplementedError(f"statement elements {sorted(unsupported)}")
    return (
        _principal_matches(statement["Principal"], request)
        and any(_like(pattern, request.action, ignore_case=True) for pattern in _as_list(statement["Action"]))
        and any(_like(pattern, request.resource) for pattern in _as_list(statement["Resource"]))
        and _conditions_hold(statement.get("Condition", {}), request.context)
    )


def _principal_matches(principal: Any, request: Request) -> bool:
    if principal == "*":
        return True
    for kind, values in principal.items():
        for value in _as_list(values):
            if kind == "AWS" and value == "*":
                return True
            if kind == request.principal_type and value == request.principal:
                return True
    return False


# Operator -> does the context value match one of the policy's values? A key absent from the
# request makes the condition false (no ...IfExists operator is used here).
_OPERATORS = {
    "StringEquals": lambda actual, expected: actual == expected,
    "StringLike": lambda actual, expected: _like(expected, actual),
    "ArnEquals": lambda actual, expected: actual == expected,
    "ArnLike": lambda actual, expected: _like(expected, actual),
    "Bool": lambda actual, expected: actual.lower() == str(expected).lower(),
}


# Negated operators hold when the value matches none of the policy's values, and when the key is absent.
_NEGATED = {"StringNotEquals": "StringEquals", "ArnNotEquals": "ArnEquals"}


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in conditions.items():
        positive = _NEGATED.get(operator, operator)
        if positive not in _OPERATORS:
            raise NotImplementedError(f"condition operator {operator}")
        for key, expected in tests.items():
            actual = context.get(key)
            matches = actual is not None and any(_OPERATORS[positive](actual, value) for value in _as_list(expected))
            if matches == (operator in _NEGATED):
                return False
    return True


def _like(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
