"""The copy function's scheduled actions (the dispatcher, the reconciliation sweep, version pruning): a rule
that invokes the function with `{"action": ...}` on a schedule."""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


def scheduled_action(
    scope: Construct, *, action: str, schedule: events.Schedule, description: str, function: lambda_.IFunction
) -> events.Rule:
    """The rule ("Rule" in `scope`). Never retried: each action's next run does what a failed one left."""
    rule = events.Rule(scope, "Rule", description=description, schedule=schedule)
    rule.add_target(
        targets.LambdaFunction(function, event=events.RuleTargetInput.from_object({"action": action}), retry_attempts=0)
    )
    return rule
