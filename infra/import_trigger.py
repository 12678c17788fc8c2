"""The EventBridge rule that admits a copy when HealthImaging reports a new image set: events go to a
queue, the copy function writes each into the copy journal's backlog (PENDING) and the dispatcher
(infra/dispatcher.py) starts them at the quota's pace. A burst of any size costs a queue's worth of
messages, never an execution, a Lambda throttle or a slot past an execution's timeout."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .queues import encrypted_queue, only_from_rule

# A message the function fails this often (a malformed event, DynamoDB down for minutes) is dead-lettered.
MAX_RECEIVES = 5
# Admission is a few DynamoDB writes per event: two batches at a time drain 10,000 events in about a minute
# and leave the rest of the function's concurrency to the copies.
ADMISSION_CONCURRENCY = 2


class ImportTrigger(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        function_timeout: Duration,
        datastore_id: str,
        detail_types: tuple[str, ...],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        # Events EventBridge could not deliver, and messages the function could not admit (docs/operations.md).
        # Both kept when the stack is deleted: events not yet admitted or dead-lettered are copies still owed.
        self.dead_letter_queue = encrypted_queue(self, "DeadLetterQueue", key, removal_policy=RemovalPolicy.RETAIN)
        self.admission_queue = encrypted_queue(
            self,
            "AdmissionQueue",
            key,
            removal_policy=RemovalPolicy.RETAIN,
            # Lambda's advice for an SQS event source: six times the function's timeout.
            visibility_timeout=Duration.seconds(6 * function_timeout.to_seconds()),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVES),
        )
        self.rule = events.Rule(
            self,
            "Rule",
            description="HealthImaging image set events of one data store admit a copy",
            event_pattern=events.EventPattern(
                source=["aws.medical-imaging"],
                detail_type=list(detail_types),
                # Only this stack's data store; copy outcome events are never triggers (settings).
                detail={"datastoreId": [datastore_id]},
            ),
        )
        self.rule.add_target(
            targets.SqsQueue(
                self.admission_queue,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=185,
                max_event_age=Duration.hours(24),
            )
        )
        only_from_rule(self.admission_queue, self.rule)
        function.add_event_source(
            event_sources.SqsEventSource(
                self.admission_queue,
                batch_size=10,
                # A second to gather a batch: a burst's events ten to an invocation, not one each.
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
                max_concurrency=ADMISSION_CONCURRENCY,
            )
        )
