"""Shapes the CopyImageSet rate: each copy reserves the next free slot on a shared schedule.

CopyImageSet allows 0.25 requests/s per account and Region (burst 1). Rather than calling and being
throttled, a copy reserves `next = max(now + lead, last + 1/rate)` with a conditional write, the state
machine waits (whole seconds) until just before it, and StartCopy holds the call until the slot itself:
calls spaced by whole-second waits alone can land under 1/quota apart and be throttled. A call that is
throttled all the same (another client of the account's quota) goes back for a new slot
(infra/copy_workflow.py) rather than retrying at a random moment, where it would take a paced call's
token. The item is not hot: the dispatcher (copier.dispatcher) starts only the copies whose slots fall
before its next run, so the writers of one minute are that minute's dozen or so executions and any started by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from copier import clock, table
from copier.errors import CopyThrottled, TableUnavailable
from copier.settings import load_settings

PACING_KEY = "pacing#copy-image-set"
MAX_CONTENTION_RETRIES = 50
# WaitForCopySlot ends this much before the slot (Step Functions waits are whole seconds and a task
# takes time to start); StartCopy holds the call for the rest, never longer than MAX_HOLD_SECONDS.
HOLD_LEAD_SECONDS = 2
MAX_HOLD_SECONDS = 10.0
# Slots one copy may reserve besides its throttled calls': its first, after a force, after calls that landed nothing.
RESERVATIONS_WITHOUT_THROTTLING = 1 + 1 + 3


@dataclass(frozen=True)
class CopySlot:
    at: float  # when CopyImageSet may be called (epoch seconds)
    wait_seconds: int  # what WaitForCopySlot waits first
    reservations: int  # slots this copy has reserved so far, this one included

    def wire(self) -> dict[str, Any]:
        return {"at": self.at, "waitSeconds": self.wait_seconds, "reservations": self.reservations}


def next_slot(now: float, previous: float | None, rate_per_second: float) -> float:
    """The slot a copy takes: one interval after the last slot handed out, and never sooner than
    HOLD_LEAD_SECONDS from now. A slot of "now" would be late by StartCopy's own reads, and the next
    copy, held exactly to its slot, would then call less than 1/quota after it and be throttled."""
    earliest = now + HOLD_LEAD_SECONDS
    return earliest if previous is None else max(earliest, previous + 1.0 / rate_per_second)


def wait_seconds(slot: float, now: float) -> int:
    """Whole seconds WaitForCopySlot waits: up to HOLD_LEAD_SECONDS before the slot, never less than 0."""
    return max(0, math.floor(slot - now - HOLD_LEAD_SECONDS))


def hold_seconds(slot: float | None, now: float) -> float:
    """How long StartCopy holds its call so it lands on the slot; 0 once the slot has passed (a retry)."""
    return 0.0 if slot is None else min(max(0.0, slot - now), MAX_HOLD_SECONDS)


def last_slot() -> float | None:
    """The last slot handed out, if any (the schedule as it stands)."""
    item = table.get_item(PACING_KEY)
    return None if item is None else float(item["nextSlot"])


def reserve_copy_slot(reserved_before: int = 0) -> CopySlot:
    """Reserve the next CopyImageSet slot; `reserved_before`: slots this copy reserved already. A copy
    whose calls were throttled on their slots more often than THROTTLE_RETRY_ATTEMPTS stops here."""
    settings = load_settings()
    if reserved_before >= RESERVATIONS_WITHOUT_THROTTLING + settings.throttle_retry_attempts:
        raise CopyThrottled(
            f"CopyImageSet was throttled on {reserved_before} reserved slots: another client is using the account's"
            " quota (lower copyRatePerSecond to leave it room)"
        )
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
        return CopySlot(at=slot, wait_seconds=wait_seconds(slot, now), reservations=reserved_before + 1)
    raise TableUnavailable("could not reserve a copy slot: too much contention")
