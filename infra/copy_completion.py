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
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .queues import MAX_EVENT_AGE, event_queue

COPY_OUTCOMES = ("Image Set Copied", "Image Set Copy Failed")
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
        completion = event_queue(
            self,
            queue_id="Queue",
            description="HealthImaging copy outcome events of one data store wake the copies waiting for them",
            datastore_id=datastore_id,
            detail_types=COPY_OUTCOMES,
            function=function,
            function_timeout=function_timeout,
            key=key,
            max_concurrency=max(2, math.ceil(copy_rate_per_second / EVENTS_PER_SECOND_PER_BATCH)),
            # An event is worth delivering while a copy may still wait for it (maxWaitSeconds is at most a day).
            retention_period=MAX_EVENT_AGE,
        )
        self.rule = completion.rule
        self.queue = completion.queue
        self.dead_letter_queue = completion.dead_letter_queue
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
