"""The services the pipeline runs on, as the model replicates them: token buckets that refuse when empty
(CopyImageSet, each HealthImaging read, StartExecution) or delay (Step Functions' state transitions), peaks a second,
one function's Lambda environments, and the account: the virtual clock's event loop and the quotas its stacks
and other clients share (`Account`; a new quota's bucket goes there, its figure in limits.py)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from random import Random
from typing import Any

from benchmarks.scale.limits import READ_QUOTA_FIELDS, Limits
from copier.budgets import Operation

SPAN = 64.0  # events further off than this wait outside the heap until their span comes


# --- buckets ---------------------------------------------------------------------------------
class RefusingBucket:
    """A token bucket that refuses when empty (CopyImageSet, GetImageSet, StartExecution)."""

    __slots__ = ("capacity", "last", "level", "rate")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity, self.level, self.last = rate, capacity, capacity, 0.0

    def take(self, now: float) -> bool:
        self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
        self.last = now
        if self.level < 1.0 - 1e-9:
            return False
        self.level -= 1.0
        return True


class DelayingBucket:
    """A token bucket that delays instead (Step Functions state transitions): debt is queued."""

    __slots__ = ("capacity", "last", "level", "rate")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity, self.level, self.last = rate, capacity, capacity, 0.0

    def delay(self, now: float, count: int) -> float:
        level = min(self.capacity, self.level + (now - self.last) * self.rate)
        self.last, self.level = now, level - count
        return 0.0 if level >= count else (count - level) / self.rate


class PerSecond:
    """Peak events in any one second (StartExecution, transitions, reads, writes on one item)."""

    __slots__ = ("count", "peak", "second")

    def __init__(self) -> None:
        self.second, self.count, self.peak = -1, 0, 0

    def add(self, now: float, count: int = 1) -> None:
        second = int(now)
        if second != self.second:
            self.second, self.count = second, 0
        self.count += count
        self.peak = max(self.peak, self.count)


class LambdaPool:
    """One function's execution environments under its concurrency limit."""

    __slots__ = ("busy", "cold_start", "idle", "keep_alive", "limit", "peak")

    def __init__(self, limit: int, cold_start: float, keep_alive: float) -> None:
        self.limit, self.cold_start, self.keep_alive = limit, cold_start, keep_alive
        self.busy = self.peak = 0
        self.idle: list[float] = []  # when each idle environment was last used, oldest first

    def acquire(self, now: float) -> float | None:
        """The cold-start delay of the environment that runs this invocation; None if throttled."""
        if self.busy >= self.limit:
            return None
        self.busy += 1
        self.peak = max(self.peak, self.busy)
        if self.idle and now - self.idle[-1] <= self.keep_alive:
            self.idle.pop()
            return 0.0
        self.idle.clear()
        return self.cold_start

    def release(self, now: float) -> None:
        self.busy -= 1
        self.idle.append(now)


# --- the account: one event loop, the quotas its stacks share --------------------------------
Event = tuple[float, int, Callable[[Any], None], Any]


class Account:
    """One account and Region: the virtual clock and the quotas its stacks and other clients share."""

    def __init__(self, limits: Limits, seed: int) -> None:
        self.limits = limits
        self.rng = Random(seed)
        self.now = 0.0
        self._queue: list[Event] = []
        self._later: dict[int, list[Event]] = {}
        self._later_spans: list[int] = []
        self._sequence = itertools.count()
        self.copy_bucket = RefusingBucket(limits.copy_quota, limits.copy_burst)
        # Each HealthImaging read's own quota (throttling limits: burst twice the rate), and its calls' peak a second.
        self.read_buckets = {
            operation: RefusingBucket(limits.read_quota(operation), 2 * limits.read_quota(operation))
            for operation in READ_QUOTA_FIELDS
        }
        self.read_peaks = {operation: PerSecond() for operation in READ_QUOTA_FIELDS}
        self.start_bucket = RefusingBucket(limits.start_execution[1], limits.start_execution[0])
        self.transition_bucket = DelayingBucket(limits.transitions[1], limits.transitions[0])
        self.starts, self.transitions, self.wakes = PerSecond(), PerSecond(), PerSecond()
        self.transition_delay = 0.0

    def at(self, when: float, action: Callable[[Any], None], subject: Any = None) -> None:
        event = (when, next(self._sequence), action, subject)
        if when - self.now < SPAN:
            heapq.heappush(self._queue, event)
            return
        span = int(when // SPAN)  # events days off would slow every heap operation: parked by span
        parked = self._later.get(span)
        if parked is None:
            self._later[span] = [event]
            heapq.heappush(self._later_spans, span)
        else:
            parked.append(event)

    def run(self, until: Callable[[], bool]) -> None:
        queue, spans, pop, push = self._queue, self._later_spans, heapq.heappop, heapq.heappush
        while (queue or spans) and not until():
            if spans and (not queue or spans[0] * SPAN <= queue[0][0]):
                for event in self._later.pop(pop(spans)):
                    push(queue, event)
                continue
            when, _, action, subject = pop(queue)
            self.now = when
            action(subject)

    def uniform(self, bounds: tuple[float, float]) -> float:
        return bounds[0] + (bounds[1] - bounds[0]) * self.rng.random()

    def read(self, operation: Operation) -> bool:
        """A HealthImaging read now: counted on its second, and whether its quota lets it through."""
        self.read_peaks[operation].add(self.now)
        return self.read_buckets[operation].take(self.now)

    def enter(self, count: int = 1) -> float:
        """State transitions now; the time they may run (throttled transitions wait)."""
        self.transitions.add(self.now, count)
        delay = self.transition_bucket.delay(self.now, count)
        self.transition_delay = max(self.transition_delay, delay)
        return self.now + delay


class OtherClient:
    """Another client of the account's CopyImageSet quota: `rate` calls a second from `start` to `end`, each
    retried by its SDK when throttled (3 attempts, U(0,1) x 2^k s apart)."""

    def __init__(self, account: Account, rate: float, start: float, end: float) -> None:
        self.account, self.rate, self.start, self.end = account, rate, start, end
        self.calls = self.through = 0
        account.at(start, self._call, 0)

    def _call(self, attempt: int) -> None:
        account = self.account
        if attempt == 0:
            self.calls += 1
            following = account.now + 1.0 / self.rate
            if following < self.end:
                account.at(following, self._call, 0)
        if account.copy_bucket.take(account.now):
            self.through += 1
        elif attempt < 2:
            account.at(account.now + account.rng.random() * 2.0**attempt, self._call, attempt + 1)
