"""The construct's SQS queues alike: encrypted with its key, TLS only, messages kept as long as SQS allows
(a dead letter waits for an operator), and only its own EventBridge rule may send to them.

Both of its event queues are built the same way (`event_queue`): HealthImaging events of one data store ->
an EventBridge rule -> an SQS queue -> the copy function, in batches; what EventBridge could not deliver,
and what the function failed MAX_RECEIVES times, goes to the queue's dead-letter queue. The import trigger's
(infra/import_trigger.py) admits copies; the completion queue's (infra/copy_completion.py) wakes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .settings import DEAD_LETTER_RETENTION_DAYS

# A message the function fails this often (a malformed event, DynamoDB down for minutes) is dead-lettered.
MAX_RECEIVES = 5
# EventBridge retries a target for at most this long (and 185 times) before dead-lettering the event.
MAX_EVENT_AGE = Duration.hours(24)
# The function's SQS event sources: up to ten messages an invocation, gathered for up to a second, so a
# burst's events arrive ten to an invocation rather than one each (benchmarks/scale/stack.py models the same).
BATCH_SIZE = 10
BATCHING_WINDOW_SECONDS = 1


@dataclass(frozen=True)
class EventQueue:
    rule: events.Rule
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue


def event_queue(
    scope: Construct,
    *,
    queue_id: str,
    description: str,
    datastore_id: str,
    detail_types: tuple[str, ...],
    function: lambda_.IFunction,
    function_timeout: Duration,
    key: kms.IKey,
    max_concurrency: int,
    retention_period: Duration | None = None,
    removal_policy: RemovalPolicy | None = None,
) -> EventQueue:
    """The rule, the queue (`queue_id`, messages kept `retention_period` or as long as SQS allows) and its
    dead-letter queue in `scope` (their logical ids are the scope's path and `queue_id`, "DeadLetterQueue",
    "Rule"), and the function's event source on the queue, `max_concurrency` batches at a time."""
    kept = {} if removal_policy is None else {"removal_policy": removal_policy}
    dead_letter_queue = encrypted_queue(scope, "DeadLetterQueue", key, **kept)
    queue = encrypted_queue(
        scope,
        queue_id,
        key,
        **kept,
        **({} if retention_period is None else {"retention_period": retention_period}),
        # Lambda's advice for an SQS event source: six times the function's timeout.
        visibility_timeout=Duration.seconds(6 * function_timeout.to_seconds()),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letter_queue, max_receive_count=MAX_RECEIVES),
    )
    rule = events.Rule(
        scope,
        "Rule",
        description=description,
        event_pattern=events.EventPattern(
            source=["aws.medical-imaging"],
            detail_type=list(detail_types),
            detail={"datastoreId": [datastore_id]},  # only this construct's data store
        ),
    )
    rule.add_target(
        targets.SqsQueue(queue, dead_letter_queue=dead_letter_queue, retry_attempts=185, max_event_age=MAX_EVENT_AGE)
    )
    only_from_rule(queue, rule)
    function.add_event_source(
        event_sources.SqsEventSource(
            queue,
            batch_size=BATCH_SIZE,
            max_batching_window=Duration.seconds(BATCHING_WINDOW_SECONDS),
            report_batch_item_failures=True,
            max_concurrency=max_concurrency,
        )
    )
    return EventQueue(rule, queue, dead_letter_queue)


def encrypted_queue(scope: Construct, construct_id: str, key: kms.IKey, **options: Any) -> sqs.Queue:
    """Encrypted with the construct's key, TLS only, messages kept the longest SQS allows unless told otherwise."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        **{"retention_period": Duration.days(DEAD_LETTER_RETENTION_DAYS), **options},
    )


def only_from_rule(queue: sqs.Queue, rule: events.Rule) -> None:
    """CDK's grant to EventBridge on an encrypted queue names no rule (it would tie the key to the rule):
    without this, any account's rule could put events in the queue."""
    queue.add_to_resource_policy(
        iam.PolicyStatement(
            sid="OnlyThisStacksRule",
            effect=iam.Effect.DENY,
            principals=[iam.ServicePrincipal("events.amazonaws.com")],
            actions=["sqs:SendMessage"],
            resources=[queue.queue_arn],
            conditions={"ArnNotEquals": {"aws:SourceArn": rule.rule_arn}},
        )
    )
