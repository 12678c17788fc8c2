"""The EventBridge rule that admits a copy when HealthImaging reports a new image set: events go to a
queue, the copy function writes each into the copy journal's backlog (PENDING) and the dispatcher
(infra/dispatcher.py) starts them at the quota's pace. A burst of any size costs a queue's worth of
messages, never an execution, a Lambda throttle or a slot past an execution's timeout."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .queues import event_queue

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
        # Both queues kept when the stack is deleted: events not yet admitted or dead-lettered are copies owed.
        admission = event_queue(
            self,
            queue_id="AdmissionQueue",
            description="HealthImaging image set events of one data store admit a copy",
            datastore_id=datastore_id,
            # Copy outcome events are never triggers (settings).
            detail_types=detail_types,
            function=function,
            function_timeout=function_timeout,
            key=key,
            max_concurrency=ADMISSION_CONCURRENCY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.rule = admission.rule
        self.admission_queue = admission.queue
        self.dead_letter_queue = admission.dead_letter_queue
