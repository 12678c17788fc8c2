"""How many backlog copies one dispatcher run starts, and the slot of each: the pace, and the data
store's concurrent-copy quota.

The slots of a run are 1/pace apart from the first free one, all before the next run's (`horizon`). A copy
holds one of the data store's concurrent copies from its call until it lands; HealthImaging refuses a
call over the quota (ServiceQuotaExceededException), so a run also gives each copy a permit: `Permits`
says how many there are, when the copies in flight or already planned should give theirs back, and how
long a copy holds one (measured by the dispatcher, copier.dispatcher). A slot waits for the earliest
permit free at its time, so whatever the pace, copies in flight never exceed the quota; at a pace above
quota / copy duration, the permits set the schedule instead.

A run's slots are shared by the backlog's two lanes (`split_lanes`): the live lane (new imports) takes the
earliest, the bulk lane (backfills, large retries) the rest, and never less than its minimum share of them
while it has work. The slots before them were handed out by earlier runs, which plan no further ahead than
the next run's first slot (the horizon): so a live copy admitted just after a run waits for the next run and
for no more than the slots that run planned ahead, never behind a day of bulk work.

Pure functions: `python -m benchmarks.scale` drives these same ones; copier.dispatcher calls them in the
deployed stack, and keeps the schedule between its runs (the pacing item's next free slot) itself.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Permits:
    capacity: int  # the data store's concurrent-copy quota
    busy_until: tuple[float, ...]  # when each copy in flight or planned should give its permit back
    copy_seconds: float  # how long a new copy holds one


def plan_starts(
    now: float,
    next_free_slot: float,
    pending: int,
    rate_per_second: float,
    period_seconds: float,
    *,
    permits: Permits | None = None,
) -> list[float]:
    """Start times for this run, oldest copy first: from the later of `now` and the next free slot, at least
    1/rate apart (the adapted pace), each when a permit is free (if `permits`), all before the next run's
    (`now + period_seconds`: the horizon), at most `pending`."""
    if rate_per_second <= 0 or period_seconds <= 0:
        raise ValueError("rate_per_second and period_seconds must be positive")
    interval = 1.0 / rate_per_second
    first = max(now, next_free_slot)
    end = now + period_seconds
    if pending <= 0 or first >= end:
        return []
    if permits is None:
        count = min(pending, math.ceil((end - first) / interval))
        # Multiplied, not accumulated, so float error does not drift the last slot of a long plan; a quotient
        # rounded up past a whole number can add one start at the horizon's end: that one is the next run's.
        starts = [first + index * interval for index in range(count)]
        return [start for start in starts if start < end]
    # Free permits are free now; the others when their copies should land (with more copies in flight than
    # permits, the first to land free none: only the latest `capacity` of them count). Each slot takes the
    # earliest free permit, which its copy then holds for copy_seconds.
    free_at = sorted([now] * max(0, permits.capacity - len(permits.busy_until)) + list(permits.busy_until))
    free_at = free_at[len(free_at) - permits.capacity :] if permits.capacity > 0 else []
    starts = []
    candidate = first
    while free_at and len(starts) < pending:
        start = max(candidate, free_at[0])
        if start >= end:
            break
        heapq.heapreplace(free_at, start + permits.copy_seconds)
        starts.append(start)
        candidate = start + interval
    return starts


@dataclass(frozen=True)
class LaneSplit:
    live: int  # the run's first slots, to the live lane's oldest copies
    bulk: int  # the slots after them, to the bulk lane's oldest copies
    reserved: int = 0  # of the run's slots, those the bulk lane was sure of (its minimum share, or its copies)
    share: float = 0.0  # the share of the run's slots the bulk lane is promised at least, while it has copies
    credit: float = 0.0  # the bulk lane's share this run owed it and could not give in whole slots: the next run's

    def live_rate(self, rate: float) -> float:
        """The rate this run promises the live lane: `rate`, less the bulk lane's minimum share while it has copies
        (so a flood of imports beyond it is old, not late, as it would be with no backfill)."""
        return rate * (1.0 - self.share)

    def bulk_rate(self, rate: float, slots: int) -> float:
        """The rate this run promises the bulk lane: what the live lane left of `rate` (the run's `slots`), at
        least the bulk lane's minimum share. `rate` when the run had no slot."""
        return rate if slots <= 0 else rate * (1.0 - self.live / slots)


def split_lanes(slots: int, *, live: int, bulk: int, bulk_minimum_share: float, credit: float = 0.0) -> LaneSplit:
    """How a run's `slots` (the earliest first) go to the lanes, `live` and `bulk` copies waiting in each: the
    live lane first, the bulk lane what is left, and at least `bulk_minimum_share` of the slots while it has copies
    waiting; never more slots than a lane has copies. The share counts in whole slots, its fractions carried from
    run to run (`credit`, the last run's LaneSplit.credit), never rounded up: a run of one or two slots (copies
    that take long against the concurrent-copy quota) gives the bulk lane one now and then, not every run's."""
    if slots < 0 or live < 0 or bulk < 0 or not 0.0 <= bulk_minimum_share <= 1.0 or credit < 0:
        raise ValueError("slots, waiting copies and credit must not be negative; the share must be within [0, 1]")
    if bulk == 0:
        return LaneSplit(live=min(live, slots), bulk=0)  # nothing owed to a lane with nothing waiting
    # A share that multiplies to a whole number is that number (0.1 x 20 is 2, not 1.9999999999999998 rounded down).
    owed = round(credit + bulk_minimum_share * slots, 9)
    reserved = min(bulk, slots, math.floor(owed))
    to_live = min(live, slots - reserved)
    to_bulk = min(bulk, slots - to_live)
    # What is owed beyond the slots given is carried, up to one slot: a share the lane had no copies to use, or
    # slots it took beyond its share (the live lane had nothing), is not banked.
    carried = min(max(owed - to_bulk, 0.0), 1.0)
    share = min(bulk_minimum_share, bulk / slots) if slots else 0.0
    return LaneSplit(live=to_live, bulk=to_bulk, reserved=reserved, share=share, credit=carried)
