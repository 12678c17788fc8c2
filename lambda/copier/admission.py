"""Admission by one paced dispatcher: how many queued copies to start in this dispatch, and when.

Copies wait in a durable backlog, not in executions. One scheduled dispatcher (the only writer
of the schedule: no contention on a shared item) runs every period and starts the next copies,
each with its own start time 1/rate after the previous one. Whatever the backlog's size, the
CopyImageSet calls are spaced by the quota, no execution waits longer than about one period
(far inside its timeout), and the Lambda concurrency the executions need stays small.

Chosen by `python -m benchmarks.scale`, which drives this function; copier.dispatcher calls it in the
deployed stack, and keeps the schedule between its runs (the last slot it planned) itself.
"""

from __future__ import annotations

import math


def plan_starts(
    now: float, next_free_slot: float, pending: int, rate_per_second: float, period_seconds: float
) -> list[float]:
    """Start times for this dispatch, oldest copy first: from the later of `now` and the next free
    slot, 1/rate apart, all before the next dispatch (`now + period_seconds`), at most `pending`."""
    if rate_per_second <= 0 or period_seconds <= 0:
        raise ValueError("rate_per_second and period_seconds must be positive")
    interval = 1.0 / rate_per_second
    first = max(now, next_free_slot)
    end = now + period_seconds
    if pending <= 0 or first >= end:
        return []
    count = min(pending, math.ceil((end - first) / interval))
    # Multiplied, not accumulated, so float error does not drift the last slot of a long plan; a quotient
    # rounded up past a whole number can add one start at the period's end: that one is the next dispatch's.
    starts = [first + index * interval for index in range(count)]
    return [start for start in starts if start < end]
