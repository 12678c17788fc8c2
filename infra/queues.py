"""The stack's SQS queues alike: encrypted with the stack's key, TLS only, messages kept as long as SQS
allows (a dead letter waits for an operator), and only this stack's EventBridge rule may send to them."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .settings import DEAD_LETTER_RETENTION_DAYS


def encrypted_queue(scope: Construct, construct_id: str, key: kms.IKey, **options: Any) -> sqs.Queue:
    """Encrypted with the stack's key, TLS only, messages kept the longest SQS allows unless told otherwise."""
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
