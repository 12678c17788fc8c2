"""The pipeline at any CopyImageSet quota, against the AWS limits that bind it: a discrete-event model.

Virtual time, one heapq event queue per run, no threads, no moto: a run is one process's loop, and the
runs share the machine's two cores. The model drives the project's own decision code: the dispatcher's
plan (`copier.dispatcher.plan_run`, `after_run`, with `copier.admission.plan_starts` and its permits of the
concurrent-copy quota), the pacing (`copier.pacing.next_slot`, `wait_until`, `hold_seconds`, and the adaptive
pace, `pacing.adapted`), the copy's fallback waits (`copier.copy_status.fallback_wait`) and the dispatcher's
constants (horizon, StartExecution rate). What it replicates is the services: the account's CopyImageSet
token bucket (shared with other clients and other stacks), the data store's concurrent copies,
GetImageSet's quota, Step Functions' StartExecution and StateTransition buckets, Lambda's environments,
HealthImaging's completion events (best effort: a share of them can be dropped), and the pipeline's queues.

Each copy takes the deployed way: EventBridge -> admission queue -> PENDING journal entry -> a dispatcher run
gives it a slot and a permit and starts its execution with both -> RouteCopy -> WaitForCopySlot (until its
timestamp) -> StartCopy, held to its slot -> CopyImageSet: accepted, or pushed back (throttled, or refused over
the concurrent-copy quota: ReserveCopySlot, a new slot after the dispatcher's, the pace slowed at the next run)
-> AwaitCopy (its token on the wake item) -> the completion event wakes it, or its fallback wait runs out ->
CheckCopy (GetImageSet on its version) -> COPIED. Printed per scenario: drain time against the physical limit
(N / min(TPS quota, concurrent copies / a copy's duration)), executions failed or timed out, copies lost,
duplicates, pushed-back calls per copy, state transitions, Lambda invocations and AWS calls per copy, how
long from a copy's end to COPIED, and where each limit binds: peak Lambda environments (and the
reservedConcurrency that leaves room: 1.25 x the peak), StartExecution, StateTransition, GetImageSet and
SendTaskSuccess a second against their quotas, writes a second on the pacing item and on the PENDING
index's one partition.

    python -m benchmarks.scale --quota 10 [--rate R] [--burst B] [--concurrent-copies C] [--copy-seconds D]
                               [--get-image-set-quota G] [--drop-events 0.0] [--seed 1]
    python -m benchmarks.scale --quick    # make bench: 10k in 60 s at 0.25, 1 and 10 TPS (about a minute)
    python -m benchmarks.scale --table    # docs/figures.md's table: 4 quotas x 4 bursts and a 1M backfill (~25 min)
    python -m benchmarks.scale --shared   # issue 16's shared-quota scenarios (another client, two stacks)

Every assumed figure and its source is printed with the results (`Limits.assumptions`).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import itertools
import math
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

LAMBDA_SOURCE = Path(__file__).resolve().parent.parent / "lambda"
if str(LAMBDA_SOURCE) not in sys.path:
    sys.path.insert(0, str(LAMBDA_SOURCE))

from copier import copy_status, dispatcher, journal, pacing  # noqa: E402  (the function's own code, as Lambda loads it)
from infra.settings import EXECUTION_TIMEOUT_DAYS, StackSettings  # noqa: E402

DAY = 86_400.0
SPAN = 64.0  # events further off than this wait outside the heap until their span comes
SETTINGS = StackSettings(datastore_id="0" * 32)  # the stack's defaults
# The smallest Regions' Step Functions quotas (outside us-east-1, us-west-2, eu-west-1; eu-west-2 and
# ap-southeast-2 run HealthImaging): docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
START_EXECUTION_BUCKET, START_EXECUTION_REFILL = 800.0, 150.0
TRANSITION_BUCKET, TRANSITION_REFILL = 800.0, 500.0
SEND_TASK_SUCCESS_REFILL = 300.0  # same page: bucket 1,500 (us-east-1, us-west-2, eu-west-1: 3,000 / 500)


def default_burst(quota: float) -> float:
    """HealthImaging's CopyImageSet burst: 1 at the default 0.25 TPS; a raised quota's assumed 4 s of it, as
    the throttling limits page shows for UpdateImageSetMetadata raised to 10 TPS (burst 40)."""
    return max(1.0, 4.0 * quota)


def default_rate(quota: float, burst: float) -> float:
    """docs/configuration.md, "Choosing copyRatePerSecond": 0.96 x the quota when its burst is 1 (every pair of
    calls must be 1/quota apart: the margin absorbs a late call), 0.99 x with a burst to absorb it."""
    return round(quota * (0.96 if burst < 2 else 0.99), 6)


@dataclass(frozen=True)
class Limits:
    """Every figure the model assumes; `assumptions()` prints them with their sources."""

    copy_quota: float = 0.25
    copy_burst: float = 1.0
    copy_rate: float = 0.24
    concurrent_copies: int = SETTINGS.concurrent_copy_quota
    copy_seconds: float = 45.0
    get_image_set_quota: float = 25.0
    start_execution: tuple[float, float] = (START_EXECUTION_BUCKET, START_EXECUTION_REFILL)
    transitions: tuple[float, float] = (TRANSITION_BUCKET, TRANSITION_REFILL)
    lambda_concurrency: int = 1_000
    cold_start: float = 0.6
    keep_alive: float = 600.0
    task_overhead: tuple[float, float] = (0.02, 0.05)
    task_work: tuple[float, float] = (0.06, 0.25)
    copy_call_latency: tuple[float, float] = (0.005, 0.03)
    transient_retry: tuple[float, float, int, float] = (2.0, 2.0, 6, 60.0)
    read_attempts: int = 4
    event_delay: tuple[float, float] = (0.5, 2.0)
    event_drop: float = 0.0
    completion_wait: int = SETTINGS.completion_wait_seconds
    poll_initial: int = SETTINGS.poll_initial_seconds
    poll_max: int = SETTINGS.poll_max_seconds
    max_wait: int = SETTINGS.max_wait_seconds
    execution_timeout: float = EXECUTION_TIMEOUT_DAYS * DAY
    reservations: int = pacing.RESERVATIONS_WITHOUT_THROTTLING + SETTINGS.throttle_retry_attempts
    dispatch_period: float = float(dispatcher.PERIOD_SECONDS)
    dispatch_jitter: float = 1.0
    start_call: float = 0.03
    ddb_read: float = 0.004
    ddb_write: float = 0.006
    queue_lag: float = 0.2
    # The SQS event sources' figures (infra/queues.py, infra/import_trigger.py, infra/copy_completion.py): literals
    # here, because importing the constructs loads the CDK; tests/test_scale_model.py checks they are the same.
    admission_batch: int = 10
    admission_concurrency: int = 2
    batching_window: float = 1.0  # both event sources' MaximumBatchingWindowInSeconds
    wake_batch: int = 10
    wake_events_per_second_per_batch: float = 15.0

    @classmethod
    def at(cls, quota: float, **overrides: Any) -> Limits:
        """The limits at a CopyImageSet quota: its burst, the rate docs/configuration.md recommends, a GetImageSet quota
        raised with it past the default, unless given."""
        burst = overrides.pop("copy_burst", None) or default_burst(quota)
        rate = overrides.pop("copy_rate", None) or default_rate(quota, burst)
        reads = overrides.pop("get_image_set_quota", None) or max(25.0, 2.0 * rate)
        return cls(copy_quota=quota, copy_burst=burst, copy_rate=rate, get_image_set_quota=reads, **overrides)

    @property
    def physical_limit(self) -> float:
        """Copies a second at best: the TPS quota, or the concurrent copies over a copy's duration."""
        return min(self.copy_quota, self.concurrent_copies / self.copy_seconds)

    @property
    def wake_concurrency(self) -> int:
        return max(2, math.ceil(self.copy_rate / self.wake_events_per_second_per_batch))

    def assumptions(self) -> list[tuple[str, str, str]]:
        """(figure, value, source) for every figure above, as printed."""
        warm = (self.task_overhead[0] + self.task_work[0], self.task_overhead[1] + self.task_work[1])
        retry = self.transient_retry
        return [
            (
                "CopyImageSet quota",
                f"{self.copy_quota:g}/s, burst {self.copy_burst:g}",
                "--quota; HealthImaging throttling limits (0.25/1 by default; a raised burst: 4 s of the rate, as"
                " UpdateImageSetMetadata 10/40)",
            ),
            (
                "copyRatePerSecond",
                f"{self.copy_rate:g}",
                "--rate; docs/configuration.md: 0.96 x quota, burst 1; 0.99 x above",
            ),
            (
                "concurrent copies per data store",
                f"{self.concurrent_copies:,}",
                "--concurrent-copies; HealthImaging service quotas (100 per data store by default, adjustable:"
                " L-0D1B2633)",
            ),
            ("a copy's duration", f"{self.copy_seconds:g} s", "--copy-seconds; offline/emulator.py default"),
            (
                "physical limit",
                f"{self.physical_limit:g} copies/s",
                "min(TPS quota, concurrent copies / a copy's duration)",
            ),
            (
                "GetImageSet quota",
                f"{self.get_image_set_quota:g}/s, burst {2 * self.get_image_set_quota:g}",
                "--get-image-set-quota; 25/50 by default (throttling limits), raised with the rate past 12.5 copies/s"
                " (docs/configuration.md: raise together)",
            ),
            (
                "StartExecution (Standard)",
                f"bucket {self.start_execution[0]:,.0f}, refill {self.start_execution[1]:,.0f}/s",
                "Step Functions quotas, the smallest Regions (us-east-1, us-west-2, eu-west-1: 1,300 / 300)",
            ),
            (
                "StateTransition (Standard)",
                f"bucket {self.transitions[0]:,.0f}, refill {self.transitions[1]:,.0f}/s; throttled ones wait",
                "same page, the smallest Regions (the largest: 5,000 / 1,500); new accounts have less",
            ),
            (
                "SendTaskSuccess",
                f"refill {SEND_TASK_SUCCESS_REFILL:,.0f}/s (printed against, not modelled)",
                "same page, the smallest Regions (the largest: 500/s)",
            ),
            ("Lambda concurrency", f"{self.lambda_concurrency:,}", "the account's default pool (Lambda quotas)"),
            ("Lambda task, warm", f"{warm[0] * 1000:.0f}-{warm[1] * 1000:.0f} ms uniform", "assumed"),
            ("cold start", f"+{self.cold_start * 1000:.0f} ms per new environment", "docs/figures.md: handler import"),
            ("idle environment kept", f"{self.keep_alive / 60:g} min", "assumed (not published)"),
            (
                "transient retrier",
                f"{retry[0]:g} s x{retry[1]:g}, max {retry[3]:g} s, {retry[2]} retries, full jitter",
                "infra/workflow_parts.py",
            ),
            (
                "GetImageSet throttled",
                f"{self.read_attempts} attempts, U(0,1) x min(2^i, 20) s, then the transient retrier",
                "copier/healthimaging.py (botocore standard mode)",
            ),
            (
                "completion event",
                f"U({self.event_delay[0]:g}, {self.event_delay[1]:g}) s after the copy lands; {self.event_drop:.0%}"
                " dropped",
                "--drop-events; EventBridge -> completion queue -> poller: assumed; HealthImaging: best effort",
            ),
            (
                "wake consumer",
                f"batches of {self.wake_batch}, {self.wake_concurrency} at a time, 20 ms an event",
                "infra/copy_completion.py; copier/wake.py",
            ),
            (
                "fallback waits",
                f"{self.completion_wait} s, then doubling from {self.poll_initial} s to {self.poll_max} s, within"
                f" {self.max_wait} s",
                "infra/settings.py; copy_status.fallback_wait",
            ),
            (
                "pushed-back call",
                f"ReserveCopySlot: a slot after the dispatcher's; fails after {self.reservations} slots",
                "infra/copy_workflow.py; copier/pacing.py",
            ),
            (
                "adaptive pace",
                "pacing.adapted at each run: slowed to the share that went through (at most halving), or sped"
                " up by a doubling step",
                "copier/pacing.py",
            ),
            (
                "dispatch run",
                f"rate(1 minute) +0-{self.dispatch_jitter:g} s; lease, plan (dispatcher.plan_run), one pacing write,"
                f" starts at {dispatcher.START_RATE:g}/s ({self.start_call * 1000:g} ms each,"
                f" {dispatcher.START_WORKERS} at a time), STARTED marks, lease back",
                "copier/dispatcher.py",
            ),
            (
                "admission",
                f"SQS batches of {self.admission_batch}, {self.admission_concurrency} at a time, a read + a write an"
                f" event; visible {self.queue_lag:g} s after it",
                "infra/import_trigger.py; copier/intake.py",
            ),
            ("DynamoDB latency", f"read {self.ddb_read * 1000:g} ms, write {self.ddb_write * 1000:g} ms", "assumed"),
            ("execution timeout", f"{self.execution_timeout / DAY:g} days", "infra/settings.py"),
        ]


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
        self.read_bucket = RefusingBucket(limits.get_image_set_quota, 2 * limits.get_image_set_quota)
        self.start_bucket = RefusingBucket(limits.start_execution[1], limits.start_execution[0])
        self.transition_bucket = DelayingBucket(limits.transitions[1], limits.transitions[0])
        self.starts, self.transitions, self.reads, self.wakes = PerSecond(), PerSecond(), PerSecond(), PerSecond()
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


# --- one stack -------------------------------------------------------------------------------
PENDING, COPIED, FAILED = range(3)


class Execution:
    """One copy's execution: its slot, its wait, what its retriers used."""

    __slots__ = (
        "accepted_at",
        "copy",
        "deadline",
        "event_at",
        "landed_at",
        "lands_at",
        "next_wait",
        "reservations",
        "since",
        "slot",
        "transient",
        "waiting",
    )

    def __init__(self, copy: int, slot: float, deadline: float) -> None:
        self.copy, self.slot, self.deadline = copy, slot, deadline
        self.reservations = 0
        self.transient = 0
        self.accepted_at = self.lands_at = -1.0
        self.event_at = -math.inf  # the latest completion event recorded on its wake item
        self.landed_at: float | None = None  # the end of the event's second that woke it (journaled at COPIED)
        self.since = 0.0  # AwaitCopy's wakeSince
        self.next_wait = 0
        self.waiting = 0  # the wait under way (a generation: a stale timeout finds another)


@dataclass
class Outcome:
    """One stack's run of one scenario: the printed figures and the model's invariants."""

    label: str
    quota: float
    n: int
    physical_limit: float  # copies a second at best, for this stack
    concurrent_copies: int  # the data store's concurrent-copy quota
    allowed: float = 0.0  # seconds the quota (what it left this stack) allows for N
    drain: float | None = None  # first event to the last CopyImageSet accepted, if every copy was made
    copied: int = 0
    copies_failed: int = 0
    copies_lost: int = 0
    copies_pending: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    timed_out: int = 0
    duplicates: int = 0
    throttled: int = 0  # CopyImageSet calls throttled
    over_quota: int = 0  # CopyImageSet calls refused over the concurrent-copy quota
    transitions: int = 0
    invocations: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    end_to_copied: list[float] = field(default_factory=list)
    min_accept_gap: float = math.inf  # between two accepted CopyImageSet calls of this stack
    first_call: float = math.nan  # the first event to the first CopyImageSet accepted
    longest_wait: float = 0.0
    peak_late: float = 0.0  # the dispatcher's BacklogLateSeconds, at its highest (alarm BacklogLate: 1 h)
    peak_lambda: int = 0
    peak_in_flight: int = 0
    peak_starts: int = 0
    peak_transitions: int = 0
    transition_delay: float = 0.0
    peak_reads: int = 0
    peak_wakes: int = 0
    peak_pacing_writes: int = 0
    peak_pending_writes: int = 0
    lowest_pace: float = math.inf
    last_pace: float = math.nan  # the pace of the run that started the last copies
    real_seconds: float = 0.0

    @property
    def executions_failed(self) -> int:
        return sum(self.failed.values()) + self.timed_out

    def drain_ratio(self) -> float | None:
        return None if self.drain is None else self.drain / self.allowed

    def pushbacks_per_copy(self) -> float:
        return (self.throttled + self.over_quota) / self.n

    def unmet(self) -> list[str]:
        """Issue 16's targets this run misses."""
        ratio = self.drain_ratio()
        checks = {
            "drain": ratio is not None and ratio <= 1.05,
            "failed": self.executions_failed == 0,
            "lost": self.copies_lost == 0,
            "dup": self.duplicates == 0,
            "throttled": self.throttled / self.n <= 0.05,
        }
        return [name for name, met in checks.items() if not met]


class Stack:
    """One deployed pipeline (one data store) in the account: admission, backlog, dispatcher, executions."""

    def __init__(self, account: Account, limits: Limits, label: str, arrivals: list[float], name: str = "") -> None:
        self.account, self.limits, self.arrivals = account, limits, arrivals
        self.name = name
        n = len(arrivals)
        self.pool = LambdaPool(limits.lambda_concurrency, limits.cold_start, limits.keep_alive)
        self.outcome_of = bytearray(n)
        self.accepted = bytearray(n)
        self.result = Outcome(label, limits.copy_quota, n, limits.physical_limit, limits.concurrent_copies)
        self.transient_backoff = [
            min(limits.transient_retry[3], limits.transient_retry[0] * limits.transient_retry[1] ** k)
            for k in range(limits.transient_retry[2])
        ]
        # The pacing item; the journal's STARTED entries (copy -> slot) and landings (the COPIED time, duration).
        self.pacing: dict[str, Any] = {}
        self.started: dict[int, float] = {}
        self.landed: deque[tuple[float, float]] = deque()
        self.in_flight = 0  # the data store's copies under way
        self.pacing_writes, self.pending_writes = PerSecond(), PerSecond()
        # Admission: the queue, its consumers; the backlog (PENDING entries, oldest first).
        self.backlog: deque[int] = deque()
        self.received = 0
        self.consumers = 0
        self.poll_at = math.inf
        self.leased = False
        self.seen: dict[str, Any] = {}  # dispatcher.is_idle's memory (one for all environments: optimistic)
        self.dispatched = 0
        self.first_event = arrivals[0] if arrivals else 0.0
        self.last_accept = -math.inf
        self.done = 0
        # The completion queue: events waiting for a consumer, consumers under way.
        self.events: deque[tuple[float, Execution]] = deque()
        self.wake_consumers = 0

    def begin(self) -> None:
        account, limits = self.account, self.limits
        account.at(self.first_event + account.rng.random() * limits.dispatch_period, self._minute)
        self._poll_soon(self.first_event + limits.queue_lag)

    @property
    def finished(self) -> bool:
        return self.done >= len(self.arrivals)

    # --- calls, invocations, transitions ------------------------------------------------------
    def _enter(self, count: int = 1) -> float:
        """State transitions of this stack's executions (the account's quota counts them all)."""
        self.result.transitions += count
        return self.account.enter(count)

    def _call(self, name: str, count: int = 1) -> None:
        self.result.calls[name] += count

    def _invoke(self) -> float | None:
        """An invocation of the copy function: its start-up delay, or None when Lambda throttles it."""
        cold = self.pool.acquire(self.account.now)
        if cold is None:
            return None
        self.result.invocations += 1
        self._call("lambda:Invoke")
        return cold + self.account.uniform(self.limits.task_overhead)

    def _release(self) -> None:
        self.pool.release(self.account.now)

    # --- admission: EventBridge -> SQS -> the function's batches ------------------------------
    def _poll_soon(self, when: float) -> None:
        if when < self.poll_at:
            self.poll_at = when
            self.account.at(when, self._poll)

    def _poll(self, _: object) -> None:
        account, limits = self.account, self.limits
        if account.now < self.poll_at:
            return
        self.poll_at = math.inf
        n, batch_size = len(self.arrivals), limits.admission_batch
        while self.consumers < limits.admission_concurrency and self.received < n:
            first = self.arrivals[self.received] + limits.queue_lag
            if first > account.now + 1e-9:
                self._poll_soon(first)
                return
            last = min(self.received + batch_size, n) - 1
            visible = self.arrivals[last] + limits.queue_lag <= account.now + 1e-9
            full = visible and last - self.received + 1 == batch_size
            if not full and account.now < first + limits.batching_window - 1e-9:
                # The batching window: the poller waits for a full batch, or the window's end.
                self._poll_soon(min(first + limits.batching_window, self.arrivals[last] + limits.queue_lag))
                return
            batch = []
            while (
                self.received < n
                and self.arrivals[self.received] + limits.queue_lag <= account.now + 1e-9
                and len(batch) < batch_size
            ):
                batch.append(self.received)
                self.received += 1
            self._admit(batch)

    def _admit(self, batch: list[int]) -> None:
        """copier.steps.admit_batch: per event the copy-storm guard's read and the journal's write, then the
        dispatcher at once if nothing is planned."""
        account, limits = self.account, self.limits
        started = self._invoke()
        if started is None:  # throttled: the batch comes back after the visibility timeout (never, at 1,000)
            for copy in batch:
                self.outcome_of[copy] = FAILED
                self.result.copies_lost += 1
            return
        self.consumers += 1
        when = account.now + started
        for copy in batch:
            when += limits.ddb_read + limits.ddb_write
            account.at(when, self._journaled, copy)
        self._call("dynamodb:Query", len(batch))
        self._call("dynamodb:UpdateItem", len(batch))
        account.at(when + limits.ddb_read, self._admitted)

    def _journaled(self, copy: int) -> None:
        self.backlog.append(copy)
        self.pending_writes.add(self.account.now)

    def _admitted(self, _: object) -> None:
        """dispatcher.is_idle: the pacing item read, unless this environment knows a plan runs past now."""
        if not self.seen or dispatcher.wants_a_run(self.seen, self.account.now):
            self._call("dynamodb:GetItem")
            self.seen = dict(self.pacing)
        if dispatcher.wants_a_run(self.pacing, self.account.now):
            self._run(admission=True)
        else:
            self._end_admission()

    def _end_admission(self) -> None:
        self.consumers -= 1
        self._release()
        self._poll_soon(self.account.now)

    # --- the dispatcher ----------------------------------------------------------------------
    def _minute(self, _: object) -> None:
        account, limits = self.account, self.limits
        if self.finished:
            return
        account.at(account.now + limits.dispatch_period, self._minute)
        account.at(account.now + account.rng.random() * limits.dispatch_jitter, self._scheduled)

    def _scheduled(self, _: object) -> None:
        started = self._invoke()
        if started is None:
            return  # the next minute's run
        self.account.at(self.account.now + started, self._run, False)

    def _run(self, admission: bool) -> None:
        """copier.dispatcher.dispatch: lease, adapt, plan, one pacing write, starts, lease back."""
        account, limits = self.account, self.limits
        if self.leased:
            self._call("dynamodb:UpdateItem")  # the lease refused
            self._end_run(admission)
            return
        self.leased = True
        now = account.now
        self._pacing_write()  # the lease (its answer is the pacing item)
        settled = now - float(self.pacing.get("settledAt", 0)) >= dispatcher.SETTLE_EVERY_SECONDS
        if settled:
            self._call("dynamodb:Query")  # ended executions to settle
        pace, quiet = pacing.adapted(self.pacing, limits.copy_rate)
        self.result.lowest_pace = min(self.result.lowest_pace, pace)
        if self.backlog:
            self.result.last_pace = pace
        most = math.ceil(pace * dispatcher.HORIZON_SECONDS) + 1
        self._call("dynamodb:Query", 1 + most // 1_500)  # the backlog's oldest, a page per 1 MB
        plan = dispatcher.plan_run(
            self.pacing,
            now,
            pace=pace,
            pending=min(len(self.backlog), most),
            capacity=limits.concurrent_copies,
            started_slots=self._started_slots,
            landed_since=self._landed_since,
        )
        rate = dispatcher.promised_rate(limits.copy_rate, limits.concurrent_copies, plan.copy_seconds)
        admitted = [self.arrivals[copy] for copy in itertools.islice(self.backlog, len(plan.slots))]
        plan = dataclasses.replace(plan, due=dispatcher.due_after(self.pacing.get("dueAt"), admitted, rate))
        fields = dispatcher.after_run(self.pacing, plan, pace=pace, quiet_runs=quiet, now=now, settled=settled)
        for name, value in fields.items():
            self.pacing[name] = self.pacing.get(name, 0) + value if name in dispatcher.ADDED_FIELDS else value
        self._pacing_write()  # the plan
        self.seen = dict(self.pacing)
        copies = [self.backlog.popleft() for _ in range(len(plan.slots))]
        head = self.arrivals[self.backlog[0]] if self.backlog else None
        self.result.peak_late = max(self.result.peak_late, dispatcher.lateness(plan.due, head, now))
        self._call("dynamodb:TransactWriteItems", math.ceil(len(copies) / journal.MARKS_PER_TRANSACTION))
        when = now + 3 * limits.ddb_read + 2 * limits.ddb_write
        interval = max(1.0 / dispatcher.START_RATE, limits.start_call / dispatcher.START_WORKERS)
        for index, (copy, slot) in enumerate(zip(copies, plan.slots, strict=True)):
            account.at(when + index * interval + limits.start_call, self._start, (copy, slot, 0))
        end = when + len(copies) * interval + limits.start_call
        account.at(end, self._give_back_lease, admission)

    def _give_back_lease(self, admission: bool) -> None:
        """The run's copies are started and marked STARTED: the lease goes back."""
        self._pacing_write()
        self.leased = False
        self._end_run(admission)

    def _started_slots(self) -> list[float]:
        self._call("dynamodb:Query", 1 + len(self.started) // 1_500)
        return list(self.started.values())

    def _landed_since(self, since: float) -> list[float]:
        self._call("dynamodb:Query")
        while self.landed and self.landed[0][0] <= since - DAY:
            self.landed.popleft()
        return [duration for at, duration in self.landed if at > since]

    def _pacing_write(self) -> None:
        self.pacing_writes.add(self.account.now)
        self._call("dynamodb:UpdateItem")

    def _start(self, start: tuple[int, float, int]) -> None:
        """One StartExecution and the entry's mark; a throttled one is tried again by the SDK."""
        account = self.account
        copy, slot, attempt = start
        self._call("states:StartExecution")
        if not account.start_bucket.take(account.now):
            account.at(account.now + account.rng.random() * 2.0**attempt, self._start, (copy, slot, attempt + 1))
            return
        account.starts.add(account.now)
        self.pending_writes.add(account.now)  # marked STARTED with its slot (journal.mark_started)
        self.started[copy] = slot
        self.dispatched += 1
        execution = Execution(copy, slot, account.now + self.limits.execution_timeout)
        ready = self._enter(2)  # RouteCopy, WaitForCopySlot
        until = max(ready, math.floor(slot - pacing.HOLD_LEAD_SECONDS))  # pacing.wait_until's second
        self.result.longest_wait = max(self.result.longest_wait, until - self.arrivals[copy])
        account.at(until, self._start_copy, execution)

    def _end_run(self, admission: bool) -> None:
        if admission:
            self._end_admission()
        else:
            self._release()

    # --- an execution -------------------------------------------------------------------------
    def _task(self, execution: Execution, work: Callable[[Execution, float], None]) -> None:
        """A Lambda task: a transition, an environment (or the transient retrier when throttled)."""
        account = self.account
        ready = self._enter()
        if ready > account.now:
            account.at(ready, lambda e: self._invoke_task(e, work), execution)
        else:
            self._invoke_task(execution, work)

    def _invoke_task(self, execution: Execution, work: Callable[[Execution, float], None]) -> None:
        started = self._invoke()
        if started is None:
            self._retry(execution, "Lambda.TooManyRequestsException", lambda e: self._task(e, work))
            return
        work(execution, self.account.now + started + self.account.uniform(self.limits.task_work))

    def _retry(self, execution: Execution, error: str, again: Callable[[Execution], None]) -> None:
        if execution.transient >= len(self.transient_backoff):
            self._fail(execution, error)
            return
        delay = self.account.rng.random() * self.transient_backoff[execution.transient]
        execution.transient += 1
        self.account.at(self.account.now + delay, again, execution)

    def _fail(self, execution: Execution, error: str) -> None:
        self.result.failed[error] += 1
        self._enter(2)  # RecordFailure, CopyDidNotComplete
        self._call("dynamodb:UpdateItem")
        self.started.pop(execution.copy, None)
        if self.outcome_of[execution.copy] == PENDING:
            self.outcome_of[execution.copy] = FAILED
        self.done += 1

    def _start_copy(self, execution: Execution) -> None:
        self._task(execution, self._starting)

    def _starting(self, execution: Execution, ready: float) -> None:
        """StartCopy: the idempotency record and the copy record, held to the slot, CopyImageSet."""
        self._call("dynamodb:PutItem", 2)  # Powertools' in-progress record, the copy record CALLING
        call = ready + pacing.hold_seconds(execution.slot, ready) + self.account.uniform(self.limits.copy_call_latency)
        self.account.at(call, self._copy_call, execution)

    def _copy_call(self, execution: Execution) -> None:
        account, limits = self.account, self.limits
        self._call("medical-imaging:CopyImageSet")
        if account.now >= execution.deadline:
            self._release()
            self.result.timed_out += 1
            self.done += 1
            return
        if not account.copy_bucket.take(account.now):
            self.result.throttled += 1
            self._pushed_back(execution, "CopyThrottled")
            return
        if self.in_flight >= limits.concurrent_copies:  # the token is spent all the same
            self.result.over_quota += 1
            self._pushed_back(execution, "CopyQuotaExceeded")
            return
        self._call("dynamodb:UpdateItem", 2)  # the copy record ACCEPTED, Powertools' result
        self._release()
        result = self.result
        if self.accepted[execution.copy]:
            result.duplicates += 1
        self.accepted[execution.copy] = 1
        result.min_accept_gap = min(result.min_accept_gap, account.now - self.last_accept)
        if self.last_accept == -math.inf:
            result.first_call = account.now - self.first_event
        self.last_accept = max(self.last_accept, account.now)
        self.in_flight += 1
        result.peak_in_flight = max(result.peak_in_flight, self.in_flight)
        execution.accepted_at = account.now
        execution.lands_at = account.now + limits.copy_seconds
        execution.since = math.floor(account.now)
        execution.next_wait = limits.completion_wait
        account.at(execution.lands_at, self._lands, execution)
        self._await(execution)

    def _pushed_back(self, execution: Execution, error: str) -> None:
        """Caught: ReserveCopySlot (a slot after the dispatcher's), WaitForCopySlot, StartCopy again."""
        self._release()
        if execution.reservations + 1 >= self.limits.reservations:
            self._fail(execution, error)
            return
        self._task(execution, self._reserving)

    def _reserving(self, execution: Execution, ready: float) -> None:
        self.account.at(ready + self.limits.ddb_read + self.limits.ddb_write, self._reserved, execution)

    def _reserved(self, execution: Execution) -> None:
        """copier.pacing.reserve_copy_slot: the pushback counted, a slot at the current pace."""
        account = self.account
        self._call("dynamodb:GetItem")
        self._pacing_write()
        self.pacing["pushbacks"] = self.pacing.get("pushbacks", 0) + 1
        self.pacing["handed"] = self.pacing.get("handed", 0) + 1
        slot = pacing.next_slot(
            account.now, pacing.last_slot(self.pacing), pacing.current_pace(self.pacing, self.limits.copy_rate)
        )
        self.pacing["nextSlot"] = slot
        execution.slot = slot
        execution.reservations += 1
        self._release()
        ready = self._enter()  # WaitForCopySlot
        account.at(max(ready, math.floor(slot - pacing.HOLD_LEAD_SECONDS)), self._start_copy, execution)

    # --- waiting for the copy: the completion event, or the fallback -----------------------------
    def _await(self, execution: Execution) -> None:
        """AwaitCopy: its token on the wake item (Step Functions' own DynamoDB call), unless an event at or after
        wakeSince is there already; then the event or the fallback wait."""
        account = self.account
        ready = self._enter()
        self._call("dynamodb:UpdateItem")
        if execution.event_at >= execution.since:  # the event came first: the condition fails, look now
            account.at(ready + self.limits.ddb_write, self._check, execution)
            return
        execution.waiting += 1
        account.at(ready + execution.next_wait, self._timed_out, (execution, execution.waiting))

    def _timed_out(self, waiting: tuple[Execution, int]) -> None:
        execution, generation = waiting
        if execution.waiting == generation:  # not woken meanwhile
            execution.waiting += 1
            self._check(execution)

    def _lands(self, execution: Execution) -> None:
        account, limits = self.account, self.limits
        self.in_flight -= 1
        if account.rng.random() < limits.event_drop:
            return
        account.at(account.now + account.uniform(limits.event_delay), self._event, execution)

    def _event(self, execution: Execution) -> None:
        self.events.append((math.floor(execution.lands_at), execution))
        if len(self.events) == 1:
            self.account.at(self.account.now + self.limits.batching_window, self._window_ends)
        self._consume_events()

    def _window_ends(self, _: object) -> None:
        self._consume_events(window_over=True)

    def _consume_events(self, *, window_over: bool = False) -> None:
        """The completion queue's consumers: batches of up to 10 (or what the batching window gathered), a
        conditional write and a SendTaskSuccess each."""
        account, limits = self.account, self.limits
        while self.events and self.wake_consumers < limits.wake_concurrency:
            if len(self.events) < limits.wake_batch and not window_over:
                return
            started = self._invoke()
            if started is None:
                return  # SQS delivers the batch again later; the fallback covers meanwhile
            batch = [self.events.popleft() for _ in range(min(limits.wake_batch, len(self.events)))]
            if self.events:  # the next batch's window began with its first event
                account.at(account.now + limits.batching_window, self._window_ends)
            self.wake_consumers += 1
            when = account.now + started
            for at, execution in batch:
                when += 0.02
                account.at(when, self._woken, (at, execution))
            account.at(when, self._wake_batch_done)

    def _wake_batch_done(self, _: object) -> None:
        self.wake_consumers -= 1
        self._release()
        self._consume_events(window_over=True)

    def _woken(self, event: tuple[float, Execution]) -> None:
        """copier.wake.on_copy_event: the event's time recorded; the waiting copy's token sent back, if its
        wakeSince is not later."""
        at, execution = event
        self._call("dynamodb:UpdateItem")
        if at <= execution.event_at:
            return  # a duplicate or a late one
        execution.event_at = at
        if execution.waiting % 2 == 1 and execution.since <= at:
            execution.landed_at = at + 1
            self._call("states:SendTaskSuccess")
            self.account.wakes.add(self.account.now)
            execution.waiting += 1
            self._check(execution)

    def _check(self, execution: Execution) -> None:
        self._task(execution, self._checking)

    def _checking(self, execution: Execution, ready: float) -> None:
        self.account.at(ready, self._read, (execution, 0))

    def _read(self, read: tuple[Execution, int]) -> None:
        """CheckCopy's GetImageSet on its version; throttled, botocore tries again, then the transient retrier."""
        account, limits = self.account, self.limits
        execution, attempt = read
        self._call("medical-imaging:GetImageSet")
        account.reads.add(account.now)
        if not account.read_bucket.take(account.now):
            if attempt + 1 < limits.read_attempts:
                backoff = account.rng.random() * min(2.0 ** (attempt + 1), 20.0)
                account.at(account.now + backoff, self._read, (execution, attempt + 1))
                return
            self._release()
            self._retry(execution, "HealthImagingUnavailable", self._check)
            return
        self._release()
        if account.now >= execution.lands_at:
            self._copied(execution)
            return
        waited = int(account.now - execution.accepted_at)
        if waited >= limits.max_wait:
            self._fail(execution, "CopyWaitTimedOut")
            return
        execution.next_wait = copy_status.fallback_wait(
            execution.next_wait, waited, initial=limits.poll_initial, cap=limits.poll_max, max_wait=limits.max_wait
        )
        execution.since = math.floor(account.now)
        self._enter()  # CopyFinished?
        self._await(execution)

    def _copied(self, execution: Execution) -> None:
        account, result = self.account, self.result
        self._call("dynamodb:UpdateItem")  # the journal's COPIED
        self._enter(3)  # CopyFinished?, ReportResult, Copied
        result.end_to_copied.append(account.now - execution.lands_at)
        slot = self.started.pop(execution.copy, None)
        if slot is not None:  # journal.landed_since: to the end of the event's second, or to this look
            self.landed.append((account.now, (execution.landed_at or account.now) - slot))
        self.outcome_of[execution.copy] = COPIED
        self.done += 1

    # --- the figures ---------------------------------------------------------------------------
    def finish(self, real_seconds: float) -> Outcome:
        result, account = self.result, self.account
        result.copied = self.outcome_of.count(COPIED)
        result.copies_failed = self.outcome_of.count(FAILED) - result.copies_lost
        result.copies_pending = self.outcome_of.count(PENDING)
        if result.copied == result.n:
            result.drain = self.last_accept - self.first_event
        result.peak_lambda = self.pool.peak
        result.peak_pacing_writes = self.pacing_writes.peak
        result.peak_pending_writes = self.pending_writes.peak
        result.peak_starts = account.starts.peak
        result.peak_transitions = account.transitions.peak
        result.transition_delay = account.transition_delay
        result.peak_reads = account.reads.peak
        result.peak_wakes = account.wakes.peak
        result.real_seconds = real_seconds
        return result


# --- scenarios -------------------------------------------------------------------------------
BURSTS: tuple[tuple[str, int, float], ...] = (
    ("10k in 60 s", 10_000, 60.0),
    ("50k in 5 min", 50_000, 300.0),
    ("200k in 10 min", 200_000, 600.0),
    ("1M backfill", 1_000_000, 0.0),
)
QUOTAS = (0.25, 1.0, 10.0, 40.0)
# The concurrent-copy quota raised with the TPS quota, so that the TPS quota binds: at least 1.25 x the rate x a
# copy's duration (docs/configuration.md, "Choosing copyRatePerSecond": the dispatcher's measure of a copy's
# duration includes its completion event's delay).
C_RAISED = {10.0: 600, 40.0: 2_400}


def arrivals_of(n: int, window: float, start: float = 0.0) -> list[float]:
    return [start + index * window / n for index in range(n)]


def simulate(
    limits: Limits,
    n: int,
    window: float,
    *,
    label: str = "",
    seed: int = 1,
    others: tuple[tuple[float, float, float], ...] = (),
) -> Outcome:
    """One stack, N events spread evenly over `window` seconds (0: all at once); `others`: other clients of
    the quota, (rate, from, to)."""
    (outcome,) = simulate_stacks([limits], n, window, label=label, seed=seed, others=others)
    return outcome


def simulate_stacks(
    stack_limits: list[Limits],
    n: int,
    window: float,
    *,
    label: str = "",
    seed: int = 1,
    others: tuple[tuple[float, float, float], ...] = (),
) -> list[Outcome]:
    """Stacks of one account (one data store each), each with N events over `window` seconds at once."""
    started = time.perf_counter()
    account = Account(stack_limits[0], seed)
    stacks = [
        Stack(account, limits, label or f"{n:,} in {window:g} s", arrivals_of(n, window), name=f"stack {i + 1}")
        for i, limits in enumerate(stack_limits)
    ]
    for rate, start, end in others:
        OtherClient(account, rate, start, end)
    for stack in stacks:
        stack.begin()
    account.run(until=lambda: all(stack.finished for stack in stacks))
    outcomes = [stack.finish(time.perf_counter() - started) for stack in stacks]
    for stack, outcome in zip(stacks, outcomes, strict=True):
        outcome.allowed = allowed_seconds(stack, stack_limits, others)
    return outcomes


def allowed_seconds(stack: Stack, stack_limits: list[Limits], others: tuple[tuple[float, float, float], ...]) -> float:
    """What the quota left this stack allows for its N copies: the physical limit, less what other clients
    take of the TPS quota while they run, shared evenly with the account's other stacks while they copy."""
    limits = stack.limits
    n = len(stack.arrivals)
    if not others and len(stack_limits) == 1:
        return n / limits.physical_limit
    # Walk time in seconds: this stack's share of the quota is (quota - others' demand) / stacks, capped by
    # its data store's concurrent copies over a copy's duration.
    done, t = 0.0, 0.0
    concurrency = limits.concurrent_copies / limits.copy_seconds
    while done < n:
        taken = sum(rate for rate, start, end in others if start <= t < end)
        share = min(concurrency, max(0.0, limits.copy_quota - taken) / len(stack_limits))
        done += share
        t += 1.0
    return t


# --- the print-out ---------------------------------------------------------------------------
def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} d"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) + " |" for line in lines
    )


def reserved_concurrency(outcome: Outcome) -> int:
    """The reservation that leaves room: 1.25 x the peak environments, at least 10."""
    return max(10, math.ceil(1.25 * outcome.peak_lambda))


def results_table(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        ratio = o.drain_ratio()
        ends = sorted(o.end_to_copied) or [math.nan]
        rows.append(
            [
                f"{o.quota:g}",
                f"{o.concurrent_copies:,}",
                o.label,
                "never" if ratio is None else f"{ratio:.3f}",
                f"{o.executions_failed:,}",
                f"{o.copies_lost:,} / {o.duplicates:,}",
                f"{o.throttled / o.n:.3f} / {o.over_quota / o.n:.3f}",
                f"{o.transitions / o.n:.1f}",
                f"{sum(o.calls.values()) / o.n:.1f}",
                f"{ends[len(ends) // 2]:.1f} / {ends[-1]:.0f} s",
                "all met" if not o.unmet() else "missed: " + ", ".join(o.unmet()),
            ]
        )
    headers = [
        "Q", "C", "scenario", "drain / limit", "failed", "lost / dup", "throttled / over quota per copy",
        "transitions / copy", "AWS calls / copy", "end -> COPIED p50 / max", "targets",
    ]  # fmt: skip
    return table(headers, rows)


def limits_table(outcomes: list[Outcome], limits_of: Callable[[Outcome], Limits]) -> str:
    rows = []
    for o in outcomes:
        limits = limits_of(o)
        rows.append(
            [
                f"{o.quota:g}",
                f"{o.concurrent_copies:,}",
                o.label,
                f"{o.peak_lambda} (reserve {reserved_concurrency(o)})",
                f"{o.peak_in_flight} of {limits.concurrent_copies}",
                f"{o.peak_starts} of {limits.start_execution[1]:g}",
                f"{o.peak_transitions} of {limits.transitions[1]:g} ({duration(o.transition_delay)} delay)",
                f"{o.peak_reads} of {limits.get_image_set_quota:g}",
                f"{o.peak_wakes} of {SEND_TASK_SUCCESS_REFILL:g}",
                f"{o.peak_pacing_writes} / {o.peak_pending_writes}",
                f"{o.lowest_pace:g}",
                duration(o.longest_wait),
                duration(o.peak_late),
                f"{o.real_seconds:.0f} s",
            ]
        )
    headers = [
        "Q", "C", "scenario", "peak Lambda", "peak copies in flight", "StartExecution/s (refill)",
        "transitions/s (refill)", "GetImageSet/s (quota)", "SendTaskSuccess/s (refill)",
        "writes/s: pacing item / PENDING index", "lowest pace", "longest event->call",
        "backlog late (peak)", "model run",
    ]  # fmt: skip
    return table(headers, rows)


def report(title: str, outcomes: list[Outcome], limits_of: Callable[[Outcome], Limits], seconds: float) -> str:
    shown: set[tuple[float, int]] = set()
    parts = [f"{title}: {len(outcomes)} runs in {seconds:.0f} s of real time."]
    for o in outcomes:
        if (o.quota, o.concurrent_copies) in shown:
            continue
        shown.add((o.quota, o.concurrent_copies))
        parts += [
            "",
            f"Assumed figures at Q = {o.quota:g}, C = {o.concurrent_copies:,}",
            table(["figure", "value", "source"], [list(r) for r in limits_of(o).assumptions()]),
        ]
    parts += [
        "",
        "Results (drain: first event to last CopyImageSet accepted, over what the quota allows)",
        results_table(outcomes),
    ]
    parts += ["", "Where the limits bind", limits_table(outcomes, limits_of)]
    return "\n".join(parts)


def _run(job: tuple[str, Limits, int, float, int]) -> Outcome:
    label, limits, n, window, seed = job
    return simulate(limits, n, window, label=label, seed=seed)


def run_jobs(jobs: list[tuple[str, Limits, int, float, int]]) -> list[Outcome]:
    # Each run is one process's event loop; the largest go first so both cores stay busy.
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][2] * jobs[i][1].copy_rate)
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        done = dict(zip(order, pool.map(_run, [jobs[i] for i in order]), strict=True))
    return [done[i] for i in range(len(jobs))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quota", type=float, help="CopyImageSet TPS quota (applied)")
    parser.add_argument("--rate", type=float, help="copyRatePerSecond (default: docs/configuration.md)")
    parser.add_argument("--burst", type=float, help="the quota's burst (default: 4 s of it, at least 1)")
    parser.add_argument("--concurrent-copies", type=int, default=SETTINGS.concurrent_copy_quota)
    parser.add_argument("--copy-seconds", type=float, default=45.0)
    parser.add_argument("--get-image-set-quota", type=float)
    parser.add_argument("--drop-events", type=float, default=0.0, help="share of completion events dropped")
    parser.add_argument("--quick", action="store_true", help="10k in 60 s at 0.25, 1 and 10 TPS")
    parser.add_argument("--table", action="store_true", help="docs/figures.md's table")
    parser.add_argument("--shared", action="store_true", help="the shared-quota scenarios")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.shared:
        print(shared_report(args.seed))
        return 0

    def limits_at(quota: float) -> Limits:
        return Limits.at(
            quota,
            copy_rate=args.rate,
            copy_burst=args.burst,
            get_image_set_quota=args.get_image_set_quota,
            concurrent_copies=args.concurrent_copies,
            copy_seconds=args.copy_seconds,
            event_drop=args.drop_events,
        )

    if args.table:
        # The default concurrent-copy quota at every Q, then, at 10 and 40 TPS, one raised with it (C_RAISED).
        runs = [(limits_at(q), b) for q in QUOTAS for b in BURSTS]
        raised = [dataclasses.replace(limits_at(q), concurrent_copies=c) for q, c in C_RAISED.items()]
        runs += [(limits, b) for limits in raised for b in BURSTS]
    elif args.quick:
        runs = [(limits_at(q), BURSTS[0]) for q in (0.25, 1.0, 10.0)]
    else:
        runs = [(limits_at(args.quota or 0.25), b) for b in BURSTS]
    outcomes = run_jobs([(label, limits, n, window, args.seed) for limits, (label, n, window) in runs])
    limits_of = {id(o): limits for o, (limits, _) in zip(outcomes, runs, strict=True)}
    print(report("Scale model", outcomes, lambda o: limits_of[id(o)], time.perf_counter() - started))
    return 0


def shared_report(seed: int) -> str:
    """Issue 16's shared-quota scenarios at Q = 10 (the concurrent-copy quota raised so that the TPS quota
    binds): another client takes half the quota for an hour during a 50k burst; two stacks of one account,
    each configured at the full quota, both with 50k bursts at once."""
    started = time.perf_counter()
    raised = {"concurrent_copies": 1_000}
    one = Limits.at(10.0, **raised)
    half = simulate(
        one,
        50_000,
        300.0,
        label="50k, another client at 5/s from 10 to 70 min",
        seed=seed,
        others=((5.0, 600.0, 4_200.0),),
    )
    full = Limits.at(10.0, copy_rate=10.0, **raised)
    pair = simulate_stacks([full, full], 50_000, 300.0, label="two stacks, 50k each, at 10/s each", seed=seed)
    for stack, outcome in enumerate(pair, start=1):
        outcome.label = f"stack {stack} of two, 50k each at once, both at 10/s"
    outcomes = [half, *pair]
    return report("Shared quota", outcomes, lambda o: full if "two" in o.label else one, time.perf_counter() - started)


if __name__ == "__main__":
    sys.exit(main())
