"""Shapes the CopyImageSet rate: every call on a slot of one shared schedule, at a pace that adapts.

CopyImageSet allows copyRatePerSecond (the applied quota, less a margin) per account and Region. The
schedule is one DynamoDB item, `pacing#copy-image-set`: `nextSlot`, the last slot handed out. The dispatcher
(copier.dispatcher) takes its slots a block at a time: one conditional write per run covers the copies it
starts, each of which carries its slot in its input (no write per copy on this item). A copy started by
hand, and a call that was pushed back (throttled, or refused over the concurrent-copy quota), reserve one
slot after that block: `next = max(now + lead, last + 1/pace)`, a conditional write. The state machine
waits until just before the slot (WaitForCopySlot, a timestamp), and StartCopy holds the call until the
slot itself: calls spaced by whole-second waits alone could land under 1/quota apart and be throttled.

The pace adapts (AIMD) because the quota is shared with every client of the account: when calls are
pushed back although our pace is at most the configured rate, someone else is using the quota. Each
reservation after a pushback counts it on the item; each dispatcher run, once a minute, slows the pace to
the share of the last period's calls that went through (`slowed`: at most halving, never under a floor),
or, after a period without pushback, speeds it up by a step that doubles with each quiet period
(`recovered`), up to the configured rate. The state (`pace`, `pushbacks`, `handed`, `quietRuns`) lives on
the same item, beside the dispatcher's lease (`leaseUntil`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from copier import budgets, clock, table
from copier.errors import CopyQuotaExceeded, CopyThrottled, TableUnavailable
from copier.settings import load_settings

PACING_KEY = "pacing#copy-image-set"
MAX_CONTENTION_RETRIES = 50
# WaitForCopySlot ends this much before the slot (Step Functions waits end on whole seconds and a task
# takes time to start); StartCopy holds the call for the rest, never longer than MAX_HOLD_SECONDS.
HOLD_LEAD_SECONDS = 2
MAX_HOLD_SECONDS = 10.0
# Slots one copy may reserve besides its pushed-back calls': its first, after a force, after calls that landed nothing.
RESERVATIONS_WITHOUT_THROTTLING = 1 + 1 + 3
# The adaptive pace: never under this share of the configured rate; a decrease at most halves it, and keeps
# this margin under the share that went through; the increase after a quiet period is this share of the
# rate, doubled for each quiet period in a row, up to 2**MAX_DOUBLINGS times it.
PACE_FLOOR = 0.05
MAX_DECREASE = 0.5
DECREASE_MARGIN = 0.02
INCREASE_STEP = 0.01
MAX_DOUBLINGS = 4
# What StartCopy's pushbacks are called in the workflow (a Catch's error name, in $.slot.pushback).
PUSHBACKS = {"CopyThrottled": CopyThrottled, "CopyQuotaExceeded": CopyQuotaExceeded}


@dataclass(frozen=True)
class CopySlot:
    at: float  # when CopyImageSet may be called (epoch seconds)
    wait_seconds: int  # what a WaitForCopySlot of seconds waits (the definition before waits ended on waitUntil)
    reservations: int  # slots this copy has reserved so far, this one included
    planned: bool = False  # the dispatcher's slot: the copy's journal entry says STARTED already

    def wire(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "waitSeconds": self.wait_seconds,
            "waitUntil": wait_until(self.at),
            "reservations": self.reservations,
            "planned": self.planned,
        }


def next_slot(now: float, previous: float | None, pace: float) -> float:
    """The slot a copy takes: one interval after the last slot handed out, and never sooner than
    HOLD_LEAD_SECONDS from now. A slot of "now" would be late by StartCopy's own work, and the next
    copy, held exactly to its slot, would then call less than 1/quota after it and be throttled."""
    earliest = now + HOLD_LEAD_SECONDS
    return earliest if previous is None else max(earliest, previous + 1.0 / pace)


def wait_seconds(slot: float, now: float) -> int:
    """Whole seconds to wait from now: until at most HOLD_LEAD_SECONDS before the slot, never less than 0."""
    return max(0, math.floor(slot - now - HOLD_LEAD_SECONDS))


def wait_until(slot: float) -> str:
    """WaitForCopySlot's end (a timestamp, so however late the execution gets there it does not overshoot):
    the whole second at most HOLD_LEAD_SECONDS before the slot."""
    return datetime.fromtimestamp(math.floor(slot - HOLD_LEAD_SECONDS), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hold_seconds(slot: float | None, now: float) -> float:
    """How long StartCopy holds its call so it lands on the slot; 0 once the slot has passed (a retry)."""
    return 0.0 if slot is None else min(max(0.0, slot - now), MAX_HOLD_SECONDS)


def slowed(pace: float, rate: float, *, pushbacks: int, calls: int) -> float:
    """The multiplicative decrease: the share of the last period's calls that went through, less a margin,
    at most halving the pace and never under the floor."""
    through = 1.0 - pushbacks / max(calls, pushbacks, 1)
    return max(rate * PACE_FLOOR, pace * max(MAX_DECREASE, through * (1.0 - DECREASE_MARGIN)))


def recovered(pace: float, rate: float, *, quiet_runs: int) -> float:
    """The additive increase after a period without pushback: a step of the rate that doubles with each
    quiet period in a row (a quota given back is used again within minutes), up to the rate."""
    return min(rate, pace + rate * INCREASE_STEP * 2 ** min(quiet_runs, MAX_DOUBLINGS))


def adapted(state: dict[str, Any], rate: float) -> tuple[float, int]:
    """A dispatcher run's pace, from the pacing item's counts since the last run; and its quiet runs."""
    pace = min(rate, float(state.get("pace", rate)))
    pushbacks = int(state.get("pushbacks", 0))
    if pushbacks:
        return slowed(pace, rate, pushbacks=pushbacks, calls=int(state.get("handed", 0))), 0
    quiet = int(state.get("quietRuns", 0))
    return recovered(pace, rate, quiet_runs=quiet), quiet + 1


def current_pace(state: dict[str, Any] | None, rate: float) -> float:
    """The pace the schedule runs at (the configured rate until a dispatcher run has adapted it)."""
    return rate if state is None else min(rate, float(state.get("pace", rate)))


def last_slot(state: dict[str, Any] | None) -> float | None:
    """The last slot handed out, if any."""
    return None if state is None or "nextSlot" not in state else float(state["nextSlot"])


def reserve_copy_slot(slot: dict[str, Any] | None = None, *, reservations: int = 0) -> CopySlot:
    """Reserve the next CopyImageSet slot after the dispatcher's planned ones. `slot`: this copy's slot so
    far (its `reservations`, and the `pushback` that sent it back, if one did); `reservations`: the count
    alone, as the definition before this release passes it. A copy pushed back on its slots more often
    than THROTTLE_RETRY_ATTEMPTS stops here, with the pushback's name."""
    settings = load_settings()
    reserved_before = int((slot or {}).get("reservations", reservations))
    pushback = ((slot or {}).get("pushback") or {}).get("Error")
    if reserved_before >= RESERVATIONS_WITHOUT_THROTTLING + settings.throttle_retry_attempts:
        raise PUSHBACKS.get(str(pushback), CopyThrottled)(
            f"CopyImageSet was pushed back ({pushback}) on {reserved_before} reserved slots: another client is using"
            " the account's quota, or the data store's concurrent copies (lower copyRatePerSecond to leave it room)"
        )
    for _ in range(MAX_CONTENTION_RETRIES):
        now = clock.now()
        state = table.get_item(PACING_KEY)
        previous = last_slot(state)
        at = next_slot(now, previous, current_pace(state, budgets.planned_rate_of(settings).rate))
        condition = "attribute_not_exists(nextSlot)" if previous is None else "nextSlot = :previous"
        values: dict[str, Any] = {":slot": Decimal(repr(at)), ":expiration": int(at) + 86_400, ":one": 1}
        if previous is not None:
            values[":previous"] = Decimal(repr(previous))
        counts = "handed :one, pushbacks :one" if pushback in PUSHBACKS else "handed :one"
        taken = table.call_if(
            "update_item",
            Key={"id": {"S": PACING_KEY}},
            UpdateExpression=f"SET nextSlot = :slot, expiration = :expiration ADD {counts}",
            ConditionExpression=condition,
            ExpressionAttributeValues=table.to_dynamodb(values),
        )
        if taken is None:
            continue  # another copy, or the dispatcher, took that slot: read again
        return CopySlot(at=at, wait_seconds=wait_seconds(at, now), reservations=reserved_before + 1)
    raise TableUnavailable("could not reserve a copy slot: too much contention")
