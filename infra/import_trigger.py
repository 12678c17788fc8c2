"""The EventBridge rule that starts a copy when HealthImaging reports a new image set."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.settings import DEAD_LETTER_RETENTION_DAYS


class ImportTrigger(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.IStateMachine,
        datastore_id: str,
        detail_types: tuple[str, ...],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        # Events EventBridge could not deliver after its retries land here (README: "Redrive").
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(DEAD_LETTER_RETENTION_DAYS),
        )
        self.rule = events.Rule(
            self,
            "Rule",
            description="HealthImaging image set events of one data store start a copy",
            event_pattern=events.EventPattern(
                source=["aws.medical-imaging"],
                detail_type=list(detail_types),
                # Only this stack's data store; copy outcome events are never triggers (settings).
                detail={"datastoreId": [datastore_id]},
            ),
        )
        self.rule.add_target(
            targets.SfnStateMachine(
                state_machine,
                input=events.RuleTargetInput.from_event_path("$"),
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=185,
                max_event_age=Duration.hours(24),
            )
        )
