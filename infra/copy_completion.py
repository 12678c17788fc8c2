"""HealthImaging's copy outcome events wake the executions waiting for them (lambda/copier/wake.py).

EventBridge rule ("Image Set Copied", "Image Set Copy Failed" of this data store) -> completion queue ->
the copy function's `wake` batches. A queue of its own, never the admission queue: the pipeline's own
copies announce themselves with these events, and none of them may be admitted as a copy to make (copy
storm). Events are best effort and only save a wait: one undeliverable or unusable goes to this
construct's dead-letter queue, and the copy it was about is looked at after its fallback wait anyway.
"""

from __future__ import annotations

import math

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .queues import encrypted_queue, only_from_rule

COPY_OUTCOMES = ("Image Set Copied", "Image Set Copy Failed")
MAX_RECEIVES = 5
# An event is worth delivering while a copy may still wait for it (maxWaitSeconds is at most a day).
MAX_EVENT_AGE = Duration.hours(24)
# One batch of 10 events takes about a second (a conditional write and a SendTaskSuccess each): this many
# copies a second per concurrent batch, with room to spare.
EVENTS_PER_SECOND_PER_BATCH = 15


class CopyCompletion(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.Function,
        function_timeout: Duration,
        datastore_id: str,
        copy_rate_per_second: float,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = encrypted_queue(self, "DeadLetterQueue", key)
        self.queue = encrypted_queue(
            self,
            "Queue",
            key,
            visibility_timeout=Duration.seconds(6 * function_timeout.to_seconds()),  # Lambda's advice for SQS
            retention_period=MAX_EVENT_AGE,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVES),
        )
        self.rule = events.Rule(
            self,
            "Rule",
            description="HealthImaging copy outcome events of one data store wake the copies waiting for them",
            event_pattern=events.EventPattern(
                source=["aws.medical-imaging"],
                detail_type=list(COPY_OUTCOMES),
                detail={"datastoreId": [datastore_id]},
            ),
        )
        self.rule.add_target(
            targets.SqsQueue(
                self.queue, dead_letter_queue=self.dead_letter_queue, retry_attempts=185, max_event_age=MAX_EVENT_AGE
            )
        )
        only_from_rule(self.queue, self.rule)
        function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=10,
                # A second to gather a batch: a burst's events ten to an invocation, not one each.
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
                max_concurrency=max(2, math.ceil(copy_rate_per_second / EVENTS_PER_SECOND_PER_BATCH)),
            )
        )
        # The function tells the two queues' batches apart by where they come from (copier.steps.run_batch).
        function.add_environment("COMPLETION_QUEUE_ARN", self.queue.queue_arn)
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="WakeWaitingCopies",
                actions=["states:SendTaskSuccess"],
                # SendTaskSuccess has no resource type (Service Authorization Reference, AWS Step Functions):
                # the task token itself says which task; a policy naming a state machine denies it.
                resources=["*"],
            )
        )
