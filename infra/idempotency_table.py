"""The DynamoDB table behind idempotency, the copy records, the copy journal and the pacing slot.

Indexes (sparse: only the items that carry their keys):
- byDestination (destinationImageSetId, destinationVersionId): which copy record produced an image
  set version (the copy-storm guard, confirmation). Only accepted copies carry both keys.
- journalBySource (journalSourceId): the journal entries of one image set, every version.
- journalByStatus (journalStatus, updatedAt): journal entries in one status, oldest change first.
- journalBacklog (backlogLane, updatedAt): the backlog, one lane at a time, oldest first; only PENDING entries
  carry backlogLane (lambda/copier/journal.py). Added by the release after 0.2.0: CloudFormation adds one index
  to a table per update, in place (the table keeps its logical id and its items; the index backfills).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct


class IdempotencyTable(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiration",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            # Losing it would let in-flight copies start twice: keep it on stack deletion.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name="byDestination",
            partition_key=dynamodb.Attribute(name="destinationImageSetId", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="destinationVersionId", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.table.add_global_secondary_index(
            index_name="journalBySource",
            partition_key=dynamodb.Attribute(name="journalSourceId", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.table.add_global_secondary_index(
            index_name="journalByStatus",
            partition_key=dynamodb.Attribute(name="journalStatus", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="updatedAt", type=dynamodb.AttributeType.NUMBER),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.table.add_global_secondary_index(
            index_name="journalBacklog",
            partition_key=dynamodb.Attribute(name="backlogLane", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="updatedAt", type=dynamodb.AttributeType.NUMBER),
            projection_type=dynamodb.ProjectionType.ALL,
        )
