"""The paced dispatcher's schedule: every minute the copy function runs its `dispatch` action, which
starts the copy journal's oldest PENDING copies, as many as the CopyImageSet quota has slots for
before the next run (lambda/copier/dispatcher/). The only starter of executions besides people."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .schedules import scheduled_action

PERIOD = Duration.minutes(1)  # copier.dispatcher.schedule.PERIOD_SECONDS


class Dispatcher(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.Function,
        state_machine_arn: str,
        execution_arn_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        # A run that fails is the next run's work: the backlog is durable, and a lease keeps runs apart.
        self.rule = scheduled_action(
            self,
            action="dispatch",
            schedule=events.Schedule.rate(PERIOD),
            description="Starts the copy journal's pending copies at the CopyImageSet quota's pace",
            function=function,
        )
        # A policy of its own, not the function's default one: the function must not depend on the
        # state machine, which depends on the function.
        self.policy = iam.Policy(
            self,
            "StartCopies",
            statements=[
                iam.PolicyStatement(
                    sid="StartPendingCopies",
                    actions=["states:StartExecution"],
                    resources=[state_machine_arn],
                ),
                # STARTED journal entries whose executions ended without a word become FAILED.
                iam.PolicyStatement(
                    sid="LookAtEndedCopies",
                    actions=["states:DescribeExecution"],
                    resources=[f"{execution_arn_prefix}:*"],
                ),
            ],
        )
        if function.role is not None:
            self.policy.attach_to_role(function.role)
