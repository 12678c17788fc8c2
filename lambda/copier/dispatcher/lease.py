"""A dispatcher run's lease on the pacing item: one run at a time, taken first (its answer is the schedule),
given back last; and, until this release has run once, the previous release's lease waited for."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger

from copier import pacing, table

logger = Logger(child=True)

# A run takes seconds (a minute's starts at START_RATE: 34 s at 50 copies a second); the lease outlives a
# run that dies, and is given back when a run ends.
LEASE_SECONDS = 55
PREVIOUS_RELEASE_SCHEDULE_KEY = "dispatcher#schedule"  # 0.1.0's lease and last planned slot


def take_lease(now: float, until: float) -> dict[str, Any] | None:
    """The pacing item, leased to this run until `until`; None when another run holds it."""
    leased = table.call_if(
        "update_item",
        Key={"id": {"S": pacing.PACING_KEY}},
        UpdateExpression="SET leaseUntil = :until",
        ConditionExpression="attribute_not_exists(leaseUntil) OR leaseUntil <= :now",
        ExpressionAttributeValues=table.to_dynamodb({":now": Decimal(repr(now)), ":until": Decimal(repr(until))}),
        ReturnValues="ALL_NEW",
    )
    return None if leased is None else table.from_dynamodb(leased["Attributes"])


def previous_release_schedule_ended(now: float) -> bool:
    """The previous release (0.1.0) leased its runs on an item of its own, `dispatcher#schedule`, beside the last
    slot it planned (`plannedUntil`: its executions reserve their own slots on the pacing item, after whatever
    this release's runs hand out, so no slot is shared and nothing else is left to read from it). Until a run of
    this release has run (no `runAt` on the pacing item), a run deletes that item, on condition that no run of
    0.1.0 still holds its lease (one under way at the deploy); False while one does."""
    deleted = table.call_if(
        "delete_item",
        Key={"id": {"S": PREVIOUS_RELEASE_SCHEDULE_KEY}},
        ConditionExpression="attribute_not_exists(leaseUntil) OR leaseUntil <= :now",
        ExpressionAttributeValues=table.to_dynamodb({":now": Decimal(repr(now))}),
    )
    return deleted is not None


def give_back_lease(until: float) -> None:
    """This run's lease, unless it ran out and the next run took it: that one is the next run's to give back."""
    given_back = table.call_if(
        "update_item",
        Key={"id": {"S": pacing.PACING_KEY}},
        UpdateExpression="REMOVE leaseUntil",
        ConditionExpression="leaseUntil = :mine",
        ExpressionAttributeValues=table.to_dynamodb({":mine": Decimal(repr(until))}),
    )
    if given_back is None:
        logger.warning("The dispatch run outlasted its lease: another run holds it now")
