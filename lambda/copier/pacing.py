"""Shapes the CopyImageSet rate: each copy reserves the next free slot on a shared schedule.

CopyImageSet allows 0.25 requests/s per account and Region (burst 1). Rather than calling
and being throttled, a copy reserves `next = max(now, last + 1/rate)` with an optimistic,
conditional write and the state machine waits until then. A burst of N copies is worked
off in about N/rate seconds with (almost) no ThrottlingException.
"""

from __future__ import annotations

import math
from decimal import Decimal

from copier import clock
from copier.ledger import LedgerUnavailable, call, get_item
from copier.settings import load_settings

PACING_KEY = "pacing#copy-image-set"
MAX_CONTENTION_RETRIES = 50


def reserve_copy_slot() -> int:
    """Reserve the next CopyImageSet slot; returns whole seconds to wait before using it."""
    settings = load_settings()
    interval = 1.0 / settings.copy_rate_per_second
    for _ in range(MAX_CONTENTION_RETRIES):
        now = clock.now()
        item = get_item(PACING_KEY)
        previous = item["nextSlot"]["N"] if item else None
        slot = now if previous is None else max(now, float(Decimal(previous)) + interval)
        condition = "attribute_not_exists(id)" if previous is None else "nextSlot = :previous"
        values = {":previous": {"N": previous}} if previous is not None else {}
        try:
            call(
                "put_item",
                TableName=settings.table_name,
                Item={
                    "id": {"S": PACING_KEY},
                    "nextSlot": {"N": repr(slot)},
                    "expiration": {"N": str(int(slot) + 86_400)},
                },
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except LedgerUnavailable as error:
            if error.code == "ConditionalCheckFailedException":
                continue  # another copy took that slot: read again
            raise
        return math.ceil(slot - now)
    raise LedgerUnavailable("could not reserve a copy slot: too much contention")
