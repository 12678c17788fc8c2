"""The daily schedule that deletes the copy function's versions no execution can use any more
(lambda/copier/versions.py: how long a version is kept, and why)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .schedules import scheduled_action


class VersionPruning(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        # A run that fails is the next day's work.
        self.rule = scheduled_action(
            self,
            action="prune_versions",
            schedule=events.Schedule.rate(Duration.days(1)),
            description="Deletes copy function versions that no execution can still be running",
            function=function,
        )
        # A policy of its own (the function's default policy cannot name the function: a cycle); versions only,
        # never the function itself.
        self.policy = iam.Policy(
            self,
            "DeleteOldVersions",
            statements=[
                iam.PolicyStatement(
                    sid="ListVersions", actions=["lambda:ListVersionsByFunction"], resources=[function.function_arn]
                ),
                iam.PolicyStatement(
                    sid="DeleteOldVersions",
                    actions=["lambda:DeleteFunction"],
                    resources=[f"{function.function_arn}:*"],
                ),
            ],
        )
        if function.role is not None:
            self.policy.attach_to_role(function.role)
