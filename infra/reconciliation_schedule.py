"""The reconciliation sweep's schedule: every `reconciliationIntervalMinutes`, the copy function runs
its `reconcile` action, which finds image sets no event announced and admits them to the backlog."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .schedules import scheduled_action


class ReconciliationSchedule(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, function: lambda_.IFunction, interval_minutes: int
    ) -> None:
        super().__init__(scope, construct_id)
        # A sweep that fails is simply the next sweep's work: its window overlaps this one's.
        self.rule = scheduled_action(
            self,
            action="reconcile",
            schedule=events.Schedule.rate(Duration.minutes(interval_minutes)),
            description="Finds image sets whose HealthImaging event never arrived and admits their copies",
            function=function,
        )
