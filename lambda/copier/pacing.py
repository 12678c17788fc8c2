"""Shapes the CopyImageSet rate: each copy reserves the next free slot on a shared schedule.

CopyImageSet allows 0.25 requests/s per account and Region (burst 1). Rather than calling
and being throttled, a copy reserves `next = max(now, last + 1/rate)` with an optimistic,
conditional write and the state machine waits until then. On moto's 1,000-import burst this
drains in 1.04 x N/rate with no ThrottlingException; `python -m benchmarks.scale` shows where it
breaks at scale, and copier.admission's paced dispatcher is to replace it.
"""

from __future__ import annotations

import math
from typing import Any

from copier import clock, table
from copier.errors import TableUnavailable
from copier.settings import load_settings

PACING_KEY = "pacing#copy-image-set"
MAX_CONTENTION_RETRIES = 50


def next_slot(now: float, previous: float | None, rate_per_second: float) -> float:
    """The slot a copy takes: now, or one interval after the last slot handed out, whichever is later."""
    return now if previous is None else max(now, previous + 1.0 / rate_per_second)


def seconds_until(slot: float, now: float) -> int:
    """Whole seconds to wait (WaitForCopySlot takes whole seconds) so the copy starts at or after its slot."""
    return math.ceil(slot - now)


def reserve_copy_slot() -> int:
    """Reserve the next CopyImageSet slot; returns whole seconds to wait before using it."""
    settings = load_settings()
    for _ in range(MAX_CONTENTION_RETRIES):
        now = clock.now()
        item = table.get_item(PACING_KEY)
        previous = item["nextSlot"] if item else None
        slot = next_slot(now, None if previous is None else float(previous), settings.copy_rate_per_second)
        condition = "attribute_not_exists(id)" if previous is None else "nextSlot = :previous"
        values: dict[str, Any] = (
            {"ExpressionAttributeValues": {":previous": {"N": str(previous)}}} if previous is not None else {}
        )
        try:
            table.call(
                "put_item",
                Item={
                    "id": {"S": PACING_KEY},
                    "nextSlot": {"N": repr(slot)},
                    "expiration": {"N": str(int(slot) + 86_400)},
                },
                ConditionExpression=condition,
                **values,
            )
        except TableUnavailable as error:
            if table.is_condition_failure(error):
                continue  # another copy took that slot: read again
            raise
        return seconds_until(slot, now)
    raise TableUnavailable("could not reserve a copy slot: too much contention")
