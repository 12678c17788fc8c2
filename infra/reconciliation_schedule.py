"""The reconciliation sweep's schedule: every `reconciliationIntervalMinutes`, the copy function runs
its `reconcile` action, which finds image sets no event announced and admits them to the backlog."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


class ReconciliationSchedule(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, function: lambda_.IFunction, interval_minutes: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self,
            "Rule",
            description="Finds image sets whose HealthImaging event never arrived and admits their copies",
            schedule=events.Schedule.rate(Duration.minutes(interval_minutes)),
        )
        # A sweep that fails is simply the next sweep's work: its window overlaps this one's.
        self.rule.add_target(
            targets.LambdaFunction(
                function, event=events.RuleTargetInput.from_object({"action": "reconcile"}), retry_attempts=0
            )
        )
