"""Bursts and a backfill against the AWS limits that bind this pipeline: a discrete-event model.

Virtual time, one heapq event queue per run, no threads, no moto: a run is one process's loop, and
the runs share the machine's two cores. Each admission design is a policy over the same model of the
services, and each drives the project's own decision code. Both run the same state machine: after
ValidateInput, ReserveCopySlot takes a slot with `copier.pacing.next_slot` inside reserve_copy_slot's
read + conditional-write loop of up to 50 tries on one DynamoDB item, WaitForCopySlot waits
`copier.pacing.wait_seconds` and StartCopy holds its call `copier.pacing.hold_seconds`. They differ in
who starts executions: "today", EventBridge, one per event; "dispatcher", dispatch runs (a minute's, and
one at once from the admission queue's consumer when nothing is planned) that start as many of the
queued copies as `copier.admission.plan_starts` counts slots before the next run plus the lead and the
start margin (`copier.dispatcher.HORIZON_SECONDS`). Only
`copy_status.check_copy`'s poll schedule is replicated (it reads settings, not arguments). Printed for
N = 1k in 60 s, 10k in 60 s, 50k in 5 min, 200k in 10 min and a 1M backfill, per design: drain time /
(N / quota), executions failed or timed out, copies lost, duplicates, throttled CopyImageSet calls per
copy, the longest wait of any execution, Lambda invocations and state transitions per copy, whether
issue 10's targets are met, where each limit binds (with the first call's delay after the first event
and the idle time of slots set by the hold lead rather than the schedule); then which design meets the
targets at every N, each design's figures and longest waits, and which the figures favour.

    python -m benchmarks.scale [--quick] [--seed 1] [--concurrency 20]

Assumed figures and their sources (`Limits`; printed with the results):

    CopyImageSet quota            0.25/s, burst 1 (ThrottlingException when empty)
                                  docs.aws.amazon.com/healthimaging/latest/devguide/throttling-limits.html
    a copy's run time             45 s: offline/emulator.py default
    copyRatePerSecond             0.24: infra/settings.py default (both designs)
    StartExecution, Standard      bucket 1,300, refill 300/s (us-east-1, us-west-2, eu-west-1; others 800 / 150)
                                  docs.aws.amazon.com/step-functions/latest/dg/limits-overview.html
    StateTransition, Standard     bucket 5,000, refill 1,500/s (others 800 / 500); throttled transitions wait
                                  (same page)
    open executions               1,000,000 per account and Region (same page)
    execution timeout             2 days: infra/settings.py EXECUTION_TIMEOUT_DAYS
    Lambda concurrency            20 reserved: infra/copy_function.py (--concurrency for the unreserved pool);
                                  a throttled invoke is Lambda.TooManyRequestsException (429)
    Lambda scaling                1,000 environments / 10 s per function: never binds here
                                  docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html
    Lambda task, warm             80-300 ms uniform, 20-50 ms of it the invoke: assumed
    cold start                    +600 ms per new environment: README figures, handler import 604 ms
    idle environment kept         10 min: assumed (not published)
    function timeout              60 s: infra/copy_function.py
    transient retrier             2 s x2, max 60 s, 6 retries, full jitter = U(0, backoff):
                                  infra/copy_workflow.py `_step`; CDK JitterType.FULL
    throttled StartCopy           caught (CopyThrottled): back to ReserveCopySlot for a new slot on the pacing item,
                                  WaitForCopySlot, StartCopy holds until it; ReserveCopySlot fails the execution
                                  (CopyThrottled) once it has reserved pacing.RESERVATIONS_WITHOUT_THROTTLING +
                                  throttleRetryAttempts = 5 + 10 slots: infra/copy_workflow.py, copier/pacing.py
                                  (CopyQuotaExceeded keeps its 30 s x2 retrier: the model never raises it)
    polls                         5 s doubling to 120 s: infra/settings.py; copier/copy_status.py
    CopyImageSet in flight        5-30 ms from call to quota: assumed
    DynamoDB, one item            1,000 writes/s (over 100 ms; failed conditional writes count), 3,000 reads/s:
                                  DynamoDB developer guide, per-partition limits (warm throughput scenarios)
    DynamoDB latency              read 4 ms, conditional write 6 ms: assumed (single-digit ms)
    SDK retries when throttled    5 attempts, U(0,1) x min(2^i, 20) s: copier/table.py; botocore standard mode
    EventBridge -> StartExecution retried up to 185 times in 24 h, then the DLQ (infra/import_trigger.py,
                                  EventBridge retry docs: "exponential back off and jitter"); the shape,
                                  U(0, min(2^k, 935)) s in 100 ms ticks, is assumed
    EventBridge -> SQS            a message per event, visible 0.2 s later (assumed); never throttled
    admission consumer            SQS event source, batch size 10, max concurrency 2, no batching window: a free
                                  consumer takes up to 10 visible messages at once (long polling); each batch is
                                  an invocation of the copy function (an environment of its 20): per message a
                                  read (copy_record) + a conditional write (journal.admit), 4 + 6 ms; then
                                  dispatcher.is_idle (a read of the schedule item: plannedUntil absent or past)
                                  and, if idle, a dispatch run in the same invocation. A throttled invocation's
                                  batch comes back after the visibility timeout (6 x 60 s), the 5th time to the
                                  DLQ (lost). infra/import_trigger.py; copier/steps.py admit_batch; SQS docs
    dispatch schedule             rule rate(1 minute) (+0-1 s) invokes the copy function's dispatch action
                                  (an environment of its 20); a lease item: one run at a time, given back at
                                  the end of the run; infra/dispatcher.py; copier/dispatcher.py
    dispatch invoke throttled     Lambda's async queue retries, 1 s doubling to 5 min (Lambda async invocation docs)
    a dispatch run                now; the lease (a conditional write; held: ends after a read); the settle query
                                  and the pacing item (reads); first = max(pacing.next_slot(now, last slot, rate),
                                  plannedUntil + 1/rate); slots = admission.plan_starts(now, first,
                                  MAX_STARTS_PER_RUN 120, rate, HORIZON_SECONDS 67 = 60 + 2 + 5); the pending
                                  query (a read) for len(slots) oldest PENDING, started one after another,
                                  StartExecution + mark 20 ms each (assumed); the lease given back with
                                  plannedUntil = the planned slot of the last started (a write); the backlog's
                                  age (a read). No slot in the executions' input. copier/dispatcher.py
    ReserveCopySlot               reserve_copy_slot's read + conditional write on the one pacing item, up to 50
                                  tries (both designs; the dispatcher's: that minute's executions contend)
                                  copier/pacing.py
    WaitForCopySlot, StartCopy    the Wait is pacing.wait_seconds = max(0, floor(slot - now - 2)) whole seconds;
                                  StartCopy holds its call pacing.hold_seconds = slot - now (at most 10 s, 0 once
                                  the slot has passed: a retry): both designs; copier/pacing.py, copier/copy_start.py
    arrivals                      evenly spread over the window; the backfill's all at t = 0
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import os
import sys
import time
from array import array
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

from copier import admission, dispatcher, pacing  # noqa: E402  (the function's own code, as Lambda loads it)
from infra.settings import EXECUTION_TIMEOUT_DAYS, StackSettings  # noqa: E402

DAY = 86_400.0
SPAN = 64.0  # events further off than this wait outside the heap until their span comes
Event = tuple[float, int, Callable[[Any], None], Any]
SETTINGS = StackSettings(datastore_id="0" * 32)  # the stack's defaults


@dataclass(frozen=True)
class Limits:
    """Every figure the model assumes; `assumptions()` prints them with their sources."""

    copy_quota: float = 0.25
    copy_burst: float = 1.0
    copy_seconds: float = 45.0
    copy_rate: float = SETTINGS.copy_rate_per_second
    start_execution_bucket: float = 1_300
    start_execution_refill: float = 300
    transition_bucket: float = 5_000
    transition_refill: float = 1_500
    open_executions: int = 1_000_000
    execution_timeout: float = EXECUTION_TIMEOUT_DAYS * DAY
    concurrency: int = 20
    task_overhead: tuple[float, float] = (0.02, 0.05)
    task_work: tuple[float, float] = (0.06, 0.25)
    copy_call_latency: tuple[float, float] = (0.005, 0.03)
    cold_start: float = 0.6
    keep_alive: float = 600.0
    function_timeout: float = 60.0
    transient_retry: tuple[float, float, int, float] = (2.0, 2.0, 6, 60.0)
    # ReserveCopySlot raises CopyThrottled once a copy has reserved this many slots.
    reservations: int = pacing.RESERVATIONS_WITHOUT_THROTTLING + SETTINGS.throttle_retry_attempts
    poll_initial: float = SETTINGS.poll_initial_seconds
    poll_max: float = SETTINGS.poll_max_seconds
    max_wait: float = SETTINGS.max_wait_seconds
    partition_writes: float = 1_000
    partition_reads: float = 3_000
    partition_window: float = 0.1
    ddb_read: float = 0.004
    ddb_write: float = 0.006
    sdk_attempts: int = 5
    eventbridge_attempts: int = 185
    eventbridge_max_age: float = DAY
    eventbridge_backoff_cap: float = 935.0
    eventbridge_tick: float = 0.1
    dispatch_period: float = float(dispatcher.PERIOD_SECONDS)
    dispatch_horizon: float = float(dispatcher.HORIZON_SECONDS)  # PERIOD + HOLD_LEAD + START_MARGIN seconds
    dispatch_max_starts: int = dispatcher.MAX_STARTS_PER_RUN
    dispatch_jitter: float = 1.0
    queue_lag: float = 0.2
    # infra/import_trigger.py's SqsEventSource (batch_size, ADMISSION_CONCURRENCY, MAX_RECEIVES) and the
    # queue's visibility timeout (6 x the function's): literals here, checked by tests/test_scale_model.py,
    # because importing the construct loads the CDK.
    admission_batch: int = 10
    admission_concurrency: int = 2
    admission_receives: int = 5
    admission_visibility: float = 6 * 60.0
    start_call: float = 0.02
    hold_lead: float = float(pacing.HOLD_LEAD_SECONDS)
    max_hold: float = pacing.MAX_HOLD_SECONDS

    def assumptions(self) -> list[tuple[str, str, str]]:
        """(figure, value, source) for every figure above, as printed."""
        transient = self.transient_retry
        warm = (self.task_overhead[0] + self.task_work[0], self.task_overhead[1] + self.task_work[1])
        return [
            ("CopyImageSet", f"{self.copy_quota:g}/s, burst {self.copy_burst:g}", "HealthImaging throttling limits"),
            ("a copy's run time", f"{self.copy_seconds:g} s", "offline/emulator.py default"),
            ("copyRatePerSecond", f"{self.copy_rate:g}", "infra/settings.py default"),
            (
                "StartExecution (Standard)",
                f"bucket {self.start_execution_bucket:,.0f}, refill {self.start_execution_refill:,.0f}/s",
                "Step Functions quotas, us-east-1 (other Regions 800 / 150)",
            ),
            (
                "StateTransition (Standard)",
                f"bucket {self.transition_bucket:,.0f}, refill {self.transition_refill:,.0f}/s; delays",
                "Step Functions quotas, us-east-1 (other Regions 800 / 500)",
            ),
            ("open executions", f"{self.open_executions:,}", "Step Functions quotas"),
            ("execution timeout", f"{self.execution_timeout / DAY:g} days", "infra/settings.py"),
            ("Lambda concurrency", f"{self.concurrency}", "infra/copy_function.py (reserved)"),
            ("Lambda scaling", "1,000 environments / 10 s: never binds here", "Lambda scaling behavior docs"),
            ("Lambda task, warm", f"{warm[0] * 1000:.0f}-{warm[1] * 1000:.0f} ms uniform", "assumed"),
            ("cold start", f"+{self.cold_start * 1000:.0f} ms per new environment", "README: handler import 604 ms"),
            ("idle environment kept", f"{self.keep_alive / 60:g} min", "assumed (not published)"),
            ("function timeout", f"{self.function_timeout:g} s", "infra/copy_function.py"),
            (
                "transient retrier",
                f"{transient[0]:g} s x{transient[1]:g}, max {transient[3]:g} s, {transient[2]} retries, full jitter",
                "infra/copy_workflow.py; CDK JitterType.FULL",
            ),
            (
                "throttled StartCopy",
                "caught: back to ReserveCopySlot for a new slot, WaitForCopySlot, StartCopy holds (both)",
                "infra/copy_workflow.py",
            ),
            (
                "",
                f"ReserveCopySlot fails the execution (CopyThrottled) after {self.reservations} slots"
                f" ({pacing.RESERVATIONS_WITHOUT_THROTTLING} + throttleRetryAttempts"
                f" {self.reservations - pacing.RESERVATIONS_WITHOUT_THROTTLING})",
                "copier/pacing.py; infra/settings.py",
            ),
            ("polls", f"{self.poll_initial:g} s doubling to {self.poll_max:g} s", "infra/settings.py; copy_status.py"),
            (
                "CopyImageSet request in flight",
                f"{self.copy_call_latency[0] * 1000:g}-{self.copy_call_latency[1] * 1000:g} ms",
                "assumed",
            ),
            (
                "DynamoDB, one item",
                f"{self.partition_writes:,.0f} writes/s (over {self.partition_window * 1000:g} ms), "
                f"{self.partition_reads:,.0f} reads/s",
                "DynamoDB docs: per-partition limits",
            ),
            ("DynamoDB latency", f"read {self.ddb_read * 1000:g} ms, write {self.ddb_write * 1000:g} ms", "assumed"),
            (
                "SDK retries, DynamoDB throttled",
                f"{self.sdk_attempts} attempts, U(0,1) x min(2^i, 20) s",
                "copier/table.py; botocore standard mode",
            ),
            (
                "EventBridge -> StartExecution",
                f"{self.eventbridge_attempts} tries in {self.eventbridge_max_age / 3600:g} h, then DLQ; "
                f"U(0, min(2^k, {self.eventbridge_backoff_cap:g})) s, {self.eventbridge_tick * 1000:g} ms ticks",
                "infra/import_trigger.py; EventBridge retry docs (shape assumed)",
            ),
            (
                "EventBridge -> SQS",
                f"a message per event, visible {self.queue_lag:g} s later; never throttled",
                "design (b); lag assumed",
            ),
            (
                "admission consumer",
                f"batches of up to {self.admission_batch}, {self.admission_concurrency} at a time, each an invocation"
                " (an environment); per message a read + a conditional write",
                "infra/import_trigger.py; copier/steps.py admit_batch",
            ),
            (
                "",
                "then dispatcher.is_idle (a read: plannedUntil absent or past) and, if idle, a dispatch run at once",
                "copier/steps.py; copier/dispatcher.py",
            ),
            (
                "",
                f"throttled: the batch back after {self.admission_visibility:g} s (visibility timeout), the"
                f" {self.admission_receives}th time to the DLQ",
                "infra/import_trigger.py; SQS event source docs",
            ),
            (
                "dispatch schedule",
                f"rate(1 minute), +0-{self.dispatch_jitter:g} s; the copy function's dispatch action; a lease item: one"
                " run at a time, given back at its end",
                "infra/dispatcher.py; copier/dispatcher.py",
            ),
            (
                "dispatch invoke throttled",
                "retried by Lambda's async queue, 1 s doubling to 5 min",
                "Lambda asynchronous invocation docs",
            ),
            (
                "a dispatch run",
                "first = max(pacing.next_slot(now, last slot, rate), plannedUntil + 1/rate); count ="
                f" len(plan_starts(now, first, {self.dispatch_max_starts}, rate, {self.dispatch_horizon:g} s)),"
                " at most the PENDING",
                "copier/dispatcher.py (HORIZON_SECONDS); copier/admission.py",
            ),
            (
                "",
                f"starts them oldest first: StartExecution + mark, {self.start_call * 1000:g} ms each; plannedUntil ="
                " the last one's planned slot; no slot in the input",
                "copier/dispatcher.py; latency assumed",
            ),
            (
                "ReserveCopySlot",
                f"read + conditional write on the pacing item, up to {pacing.MAX_CONTENTION_RETRIES} tries (both)",
                "copier/pacing.py",
            ),
            (
                "WaitForCopySlot",
                f"floor(slot - now - {self.hold_lead:g}) whole seconds, at least 0: pacing.wait_seconds (both)",
                "copier/pacing.py",
            ),
            (
                "StartCopy's hold",
                f"until the slot, at most {self.max_hold:g} s; 0 once it has passed: pacing.hold_seconds (both)",
                "copier/pacing.py; copier/copy_start.py",
            ),
            ("arrivals", "evenly spread over the window; the backfill's all at t = 0", "scenario"),
        ]


# --- buckets ---------------------------------------------------------------------------------
class RefusingBucket:
    """A token bucket that refuses when empty (CopyImageSet, StartExecution, a partition's writes)."""

    __slots__ = ("capacity", "last", "level", "rate")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity, self.level, self.last = rate, capacity, capacity, 0.0

    def take(self, now: float, wanted: int = 1) -> int:
        """Tokens granted now, at most `wanted`."""
        self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
        self.last = now
        granted = min(wanted, int(self.level + 1e-9))  # float dust must not refuse an exactly full token
        self.level -= granted
        return granted


class DelayingBucket:
    """A token bucket that delays instead (Step Functions state transitions): debt is queued."""

    __slots__ = ("capacity", "last", "level", "rate")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity, self.level, self.last = rate, capacity, capacity, 0.0

    def delay(self, now: float, count: int) -> float:
        level = self.level + (now - self.last) * self.rate
        level = min(level, self.capacity)
        self.last, self.level = now, level - count
        return 0.0 if level >= count else (count - level) / self.rate


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
            self.idle.pop()  # the most recently used: Lambda's reuse order is not published
            return 0.0
        self.idle.clear()  # the most recent has expired, so have all the older ones
        return self.cold_start

    def release(self, now: float) -> None:
        self.busy -= 1
        self.idle.append(now)


def backoffs(retrier: tuple[float, float, int, float]) -> list[float]:
    """A Step Functions retrier's delay bound per retry: IntervalSeconds x BackoffRate^k, capped."""
    interval, rate, retries, cap = retrier
    return [min(cap, interval * rate**k) for k in range(retries)]


# --- one execution of the copy state machine ------------------------------------------------
VALIDATE, RESERVE, START, CHECK = range(4)
PENDING, COPIED, FAILED, LOST = range(4)


class Execution:
    """One execution's place in the copy state machine and what its retriers have used."""

    __slots__ = (
        "accepted_at",
        "began",
        "closed",
        "copy",
        "deadline",
        "next_poll",
        "reservations",
        "slot",
        "step",
        "transient",
        "waited",
    )

    def __init__(self, copy: int, deadline: float) -> None:
        self.copy, self.deadline = copy, deadline
        self.slot: float | None = None  # ReserveCopySlot's answer
        self.step = VALIDATE
        self.transient = 0  # retries used by the transient retrier in the current state
        self.reservations = 0  # slots ReserveCopySlot has handed this execution ($.slot.reservations)
        self.began = self.waited = self.next_poll = 0.0
        self.accepted_at = -1.0
        self.closed = False


@dataclass
class Outcome:
    """One design's run of one scenario: the printed figures and the model's invariants."""

    design: str
    label: str
    n: int
    drain: float | None = None  # last CopyImageSet accepted, if every copy was made
    copied: int = 0
    copies_failed: int = 0  # no copy made, and a failed or timed-out execution says so
    copies_lost: int = 0  # no copy made, and no execution says so (EventBridge's DLQ)
    copies_pending: int = 0  # must be 0 when the model stops
    failed: Counter[str] = field(default_factory=Counter)
    timed_out: int = 0
    duplicates: int = 0
    copy_throttles: int = 0
    min_accept_gap: float = math.inf
    longest_wait: float = 0.0
    slowest_admission: float = 0.0  # event to CopyImageSet accepted
    first_call: float = math.nan  # first event to the first CopyImageSet accepted
    lead_slots: int = 0  # slots set by the hold lead (read + HOLD_LEAD_SECONDS), not one interval after the last
    lead_idle: float = 0.0  # the schedule's idle time those slots add: slot - (last slot + 1/rate)
    invocations: int = 0
    lambda_throttles: int = 0
    peak_concurrency: int = 0
    transitions: int = 0
    transition_delay: float = 0.0
    start_throttles: int = 0
    peak_open: int = 0
    peak_item_writes: int = 0
    peak_item_reads: int = 0
    real_seconds: float = 0.0

    @property
    def executions_failed(self) -> int:
        return sum(self.failed.values()) + self.timed_out

    def drain_ratio(self, limits: Limits) -> float | None:
        return None if self.drain is None else self.drain / (self.n / limits.copy_quota)

    def unmet(self, limits: Limits) -> list[str]:
        """Issue 10's targets this run misses."""
        ratio = self.drain_ratio(limits)
        checks = {
            "drain": ratio is not None and ratio <= 1.05,
            "failed": self.executions_failed == 0,
            "lost": self.copies_lost == 0,
            "dup": self.duplicates == 0,
            "throttled": self.copy_throttles / self.n <= 0.05,
        }
        return [name for name, met in checks.items() if not met]


class Model:
    """The services, shared by every design: Step Functions, Lambda, HealthImaging's quota."""

    def __init__(self, design: type[Design], limits: Limits, label: str, arrivals: list[float], seed: int) -> None:
        self.limits = limits
        self.arrivals = arrivals
        self.rng = Random(seed)
        self.now = 0.0
        self._queue: list[Event] = []
        self._later: dict[int, list[Event]] = {}  # events a while off, by span: the heap stays small
        self._later_spans: list[int] = []
        self._sequence = itertools.count()
        self.copy_bucket = RefusingBucket(limits.copy_quota, limits.copy_burst)
        self.start_bucket = RefusingBucket(limits.start_execution_refill, limits.start_execution_bucket)
        self.transition_bucket = DelayingBucket(limits.transition_refill, limits.transition_bucket)
        self.pool = LambdaPool(limits.concurrency, limits.cold_start, limits.keep_alive)
        self.transient_backoff = backoffs(limits.transient_retry)
        self.outcome_of = bytearray(len(arrivals))
        self.open = 0
        self.last_accept = -math.inf
        self.result = Outcome(design.name, label, len(arrivals))
        self.design = design(self)

    # The event queue: virtual time only moves here.
    def at(self, when: float, action: Callable[[Any], None], subject: Any = None) -> None:
        event = (when, next(self._sequence), action, subject)
        if when - self.now < SPAN:
            heapq.heappush(self._queue, event)
            return
        # Executions waiting days for a slot would make every heap operation slower: park them by span.
        span = int(when // SPAN)
        parked = self._later.get(span)
        if parked is None:
            self._later[span] = [event]
            heapq.heappush(self._later_spans, span)
        else:
            parked.append(event)

    def run(self) -> Outcome:
        started = time.perf_counter()
        self.design.begin()
        queue, spans, pop, push = self._queue, self._later_spans, heapq.heappop, heapq.heappush
        while queue or spans:
            if spans and (not queue or spans[0] * SPAN <= queue[0][0]):
                for event in self._later.pop(pop(spans)):
                    push(queue, event)
                continue
            when, _, action, subject = pop(queue)
            self.now = when
            action(subject)
        return self._finish(time.perf_counter() - started)

    def later(self, execution: Execution, when: float, action: Callable[[Execution], None]) -> None:
        """The execution's next step, unless its timeout comes first."""
        if when < execution.deadline:
            self.at(when, action, execution)
        else:
            self.at(execution.deadline, self._time_out, execution)

    def transitions(self, count: int) -> float:
        """Count state transitions now; the time they may run (throttled transitions wait)."""
        self.result.transitions += count
        delay = self.transition_bucket.delay(self.now, count)
        if delay and delay > self.result.transition_delay:
            self.result.transition_delay = delay
        return self.now + delay

    def uniform(self, bounds: tuple[float, float]) -> float:
        return bounds[0] + (bounds[1] - bounds[0]) * self.rng.random()

    # Executions.
    def start_execution(self, copy: int) -> None:
        execution = Execution(copy, self.now + self.limits.execution_timeout)
        self.open += 1
        self.result.peak_open = max(self.result.peak_open, self.open)
        self.task(execution, VALIDATE)

    def close(self, execution: Execution, error: str | None) -> None:
        if execution.closed:
            return
        execution.closed = True
        self.open -= 1
        if error is not None:
            if error == "States.Timeout":
                self.result.timed_out += 1
            else:
                self.result.failed[error] += 1
                self.transitions(1)  # Catch -> CopyDidNotComplete
            if self.outcome_of[execution.copy] == PENDING:
                self.outcome_of[execution.copy] = FAILED

    def _time_out(self, execution: Execution) -> None:
        self.close(execution, "States.Timeout")

    # Lambda task states: every attempt is a state transition and needs an environment.
    def task(self, execution: Execution, step: int) -> None:
        execution.step = step
        execution.transient = 0
        self._attempt(execution)

    def _attempt(self, execution: Execution) -> None:
        if execution.closed:
            return
        ready = self.transitions(1)
        if ready > self.now:
            self.later(execution, ready, self._invoke)
        else:
            self._invoke(execution)

    def _invoke(self, execution: Execution) -> None:
        if execution.closed:
            return
        cold = self.pool.acquire(self.now)
        if cold is None:
            self.result.lambda_throttles += 1
            self.retry_transient(execution, "Lambda.TooManyRequestsException")
            return
        self.result.invocations += 1
        execution.began = self.now
        running = self.now + cold + self.uniform(self.limits.task_overhead)
        if execution.step == RESERVE:
            self.design.reserve(execution, running)
        elif execution.step == START:
            ready = running + self.uniform(self.limits.task_work)
            arrives = self.design.copy_call_time(execution, ready) + self.uniform(self.limits.copy_call_latency)
            self.at(arrives, self._call_copy, execution)
        else:
            self.at(running + self.uniform(self.limits.task_work), self._task_done, execution)

    def end_invocation(self, execution: Execution) -> bool:
        """The environment is free again; False if the execution timed out meanwhile."""
        self.pool.release(self.now)
        if not execution.closed and self.now >= execution.deadline:
            self.close(execution, "States.Timeout")
        return not execution.closed

    def retry_transient(self, execution: Execution, error: str) -> None:
        if execution.transient >= len(self.transient_backoff):
            self.close(execution, error)
            return
        delay = self.rng.random() * self.transient_backoff[execution.transient]
        execution.transient += 1
        self.later(execution, self.now + delay, self._attempt)

    def _task_done(self, execution: Execution) -> None:
        if not self.end_invocation(execution):
            return
        if execution.step == VALIDATE:
            self.design.after_validate(execution)
        else:
            self._checked(execution)

    # StartCopy: the one CopyImageSet call.
    def _call_copy(self, execution: Execution) -> None:
        if not self.end_invocation(execution):
            return
        if not self.copy_bucket.take(self.now):
            # Caught: back to ReserveCopySlot for a new slot (the count of slots travels in $.slot).
            self.result.copy_throttles += 1
            self.task(execution, RESERVE)
            return
        result = self.result
        result.min_accept_gap = min(result.min_accept_gap, self.now - self.last_accept)
        if self.last_accept == -math.inf:
            result.first_call = self.now - self.arrivals[0]
        self.last_accept = self.now
        if self.outcome_of[execution.copy] == COPIED:
            result.duplicates += 1
        self.outcome_of[execution.copy] = COPIED
        result.slowest_admission = max(result.slowest_admission, self.now - self.arrivals[execution.copy])
        execution.accepted_at = self.now
        execution.next_poll = self.limits.poll_initial
        ready = self.transitions(1)  # WaitForCopy
        self.later(execution, ready + execution.next_poll, self._check)

    def _check(self, execution: Execution) -> None:
        self.task(execution, CHECK)

    def _checked(self, execution: Execution) -> None:
        """copier.copy_status.check_copy's decision, replicated: it reads settings, not arguments."""
        limits = self.limits
        execution.waited += execution.next_poll
        if self.now >= execution.accepted_at + limits.copy_seconds:
            self.transitions(3)  # CopyFinished?, ReportResult, Copied
            self.close(execution, None)
            return
        if execution.waited >= limits.max_wait:
            self.close(execution, "CopyWaitTimedOut")
            return
        wait = min(max(execution.next_poll * 2, limits.poll_initial), limits.poll_max)
        execution.next_poll = max(min(wait, limits.max_wait - execution.waited), 1)
        ready = self.transitions(2)  # CopyFinished?, WaitForCopy
        self.later(execution, ready + execution.next_poll, self._check)

    def wait_for_slot(self, execution: Execution, until: float) -> None:
        """A Wait state before StartCopy; its length is the execution's wait."""
        ready = self.transitions(1)
        until = max(until, ready)
        waited = min(until, execution.deadline) - self.now
        self.result.longest_wait = max(self.result.longest_wait, waited)
        self.later(execution, until, self._start)

    def _start(self, execution: Execution) -> None:
        self.task(execution, START)

    def _finish(self, real_seconds: float) -> Outcome:
        result = self.result
        outcome_of = self.outcome_of
        result.copied, result.copies_failed = outcome_of.count(COPIED), outcome_of.count(FAILED)
        result.copies_lost, result.copies_pending = outcome_of.count(LOST), outcome_of.count(PENDING)
        if result.copied == result.n:
            result.drain = self.last_accept - self.arrivals[0]
        result.invocations += self.design.own_invocations
        result.peak_concurrency = self.pool.peak
        result.real_seconds = real_seconds
        return result


# --- admission designs ---------------------------------------------------------------------
class Design:
    """An admission policy: how events become executions, and what an execution does before StartCopy."""

    name = ""
    summary = ""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.own_invocations = 0  # Lambda invocations outside the copy function (a dispatcher's)

    def begin(self) -> None:
        """Schedule the first events."""
        raise NotImplementedError

    def after_validate(self, execution: Execution) -> None:
        """From ValidateInput to StartCopy."""
        raise NotImplementedError

    def reserve(self, execution: Execution, running: float) -> None:
        """ReserveCopySlot, for a design that has it."""
        raise NotImplementedError(f"{self.name} has no ReserveCopySlot")

    def copy_call_time(self, execution: Execution, ready: float) -> float:
        """When StartCopy, ready at `ready`, calls CopyImageSet."""
        return ready


class Contender:
    """One ReserveCopySlot invocation inside reserve_copy_slot's read + conditional-write loop."""

    __slots__ = ("attempts", "execution", "loops", "read_at", "read_version")

    def __init__(self, execution: Execution, read_at: float, read_version: int) -> None:
        self.execution, self.read_at, self.read_version = execution, read_at, read_version
        self.loops = 0  # conditional writes refused: at 50 the function gives up (TableUnavailable)
        self.attempts = 0  # SDK attempts of the current write: at 5 it raises TableUnavailable


class Reserving(Design):
    """What every execution does after ValidateInput, in both designs (the same state machine):
    RouteCopy -> ReserveCopySlot (copier.pacing.reserve_copy_slot's loop on the one pacing item) ->
    WaitForCopySlot (`pacing.wait_seconds`) -> StartCopy, which holds its call until the slot
    (`pacing.hold_seconds`)."""

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        limits = model.limits
        self.next_slot: float | None = None  # the pacing item's nextSlot: the last slot handed out
        self.version = 0  # bumped by every successful conditional write
        self.contending: list[Contender] = []
        self.round_due = False
        self.writes = RefusingBucket(limits.partition_writes, limits.partition_writes * limits.partition_window)
        self.second, self.writes_this_second, self.reads_this_second = -1, 0, 0

    def after_validate(self, execution: Execution) -> None:
        self.model.transitions(1)  # RouteCopy
        self.model.task(execution, RESERVE)

    def copy_call_time(self, execution: Execution, ready: float) -> float:
        return ready + pacing.hold_seconds(execution.slot, ready)  # 0 once its slot has passed (a transient retry)

    # ReserveCopySlot: reserve_copy_slot's loop on one item, in rounds of one read + one write.
    def reserve(self, execution: Execution, running: float) -> None:
        if execution.reservations >= self.model.limits.reservations:
            self.model.at(running, self._too_many, execution)  # before any read: reserve_copy_slot's bound
        else:
            self.model.at(running, self._join, execution)

    def _too_many(self, execution: Execution) -> None:
        """reserve_copy_slot raises CopyThrottled: RecordFailure, then the execution fails."""
        if self.model.end_invocation(execution):
            self.model.close(execution, "CopyThrottled")

    def _join(self, execution: Execution) -> None:
        self._read()
        self.contending.append(Contender(execution, self.model.now, self.version))
        self._round_soon()

    def _round_soon(self) -> None:
        if not self.round_due:
            self.round_due = True
            self.model.at(self.model.now + self.model.limits.ddb_read + self.model.limits.ddb_write, self._round)

    def _per_second(self) -> None:
        second = int(self.model.now)
        if second != self.second:
            self.second, self.writes_this_second, self.reads_this_second = second, 0, 0

    def _read(self) -> None:
        self._per_second()
        self.reads_this_second += 1
        self.model.result.peak_item_reads = max(self.model.result.peak_item_reads, self.reads_this_second)

    def _round(self, _: object) -> None:
        """The round's conditional writes land: at most one wins; the others read again, or are throttled."""
        model, limits = self.model, self.model.limits
        self.round_due = False
        contenders, self.contending = self.contending, []
        granted = self.writes.take(model.now, len(contenders))
        if granted < len(contenders):
            model.rng.shuffle(contenders)  # which writes the partition throttles is arbitrary
        writers, throttled = contenders[:granted], contenders[granted:]
        self._per_second()
        self.writes_this_second += granted  # failed conditional writes cost a write too
        model.result.peak_item_writes = max(model.result.peak_item_writes, self.writes_this_second)
        current = [c for c in writers if c.read_version == self.version]
        winner = current[int(model.rng.random() * len(current))] if current else None
        if winner is not None:
            slot = pacing.next_slot(winner.read_at, self.next_slot, limits.copy_rate)
            if self.next_slot is not None and slot > self.next_slot + 1.0 / limits.copy_rate:
                model.result.lead_slots += 1  # the schedule had fallen less than the lead ahead of this read
                model.result.lead_idle += slot - self.next_slot - 1.0 / limits.copy_rate
            self.next_slot, self.version = slot, self.version + 1
            model.at(model.now, self._reserved, (winner.execution, slot, pacing.wait_seconds(slot, winner.read_at)))
        for contender in writers:
            if contender is winner:
                continue
            contender.loops, contender.attempts = contender.loops + 1, 0
            if contender.loops >= pacing.MAX_CONTENTION_RETRIES:
                model.at(model.now, self._gave_up, contender.execution)  # "too much contention"
            elif model.now - contender.execution.began > limits.function_timeout:
                model.at(model.now, self._gave_up, contender.execution)  # Sandbox.Timedout
            else:
                contender.read_at, contender.read_version = model.now, self.version
                self._read()
                self.contending.append(contender)
        for contender in throttled:
            contender.attempts += 1
            if contender.attempts >= limits.sdk_attempts:
                model.at(model.now, self._gave_up, contender.execution)  # throttled past the SDK's retries
            else:
                backoff = model.rng.random() * min(2.0 ** (contender.attempts - 1), 20.0)
                model.at(model.now + backoff, self._rewrite, contender)
        if self.contending:
            self._round_soon()

    def _rewrite(self, contender: Contender) -> None:
        """The SDK sends the same conditional write again, on its old read."""
        self.contending.append(contender)
        self._round_soon()

    def _reserved(self, won: tuple[Execution, float, int]) -> None:
        execution, slot, wait_seconds = won
        execution.slot = slot  # in the execution's input from here: StartCopy holds its call until it
        execution.reservations += 1
        if self.model.end_invocation(execution):
            self.model.wait_for_slot(execution, self.model.now + wait_seconds)  # WaitForCopySlot

    def _gave_up(self, execution: Execution) -> None:
        if self.model.end_invocation(execution):
            self.model.retry_transient(execution, "TableUnavailable")


class Today(Reserving):
    """(a) EventBridge starts an execution per event; each reserves its own slot on one DynamoDB item."""

    name = "today"
    summary = "an execution per event, each reserving its slot on one DynamoDB item (copier.pacing)"

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        limits = model.limits
        self.attempts = array("H", bytes(2 * len(model.arrivals)))  # EventBridge's tries per event
        self.backoff = [min(2.0**k, limits.eventbridge_backoff_cap) for k in range(limits.eventbridge_attempts + 2)]
        self.ticks: dict[int, list[int]] = {}

    def begin(self) -> None:
        for copy, arrival in enumerate(self.model.arrivals):
            self._deliver_at(copy, arrival)

    # EventBridge -> StartExecution, retried on throttling. Ticks batch the tries of many events:
    # a million events retrying for an hour are millions of tries.
    def _deliver_at(self, copy: int, when: float) -> None:
        tick = math.ceil(when / self.model.limits.eventbridge_tick)
        waiting = self.ticks.get(tick)
        if waiting is None:
            self.ticks[tick] = [copy]
            self.model.at(tick * self.model.limits.eventbridge_tick, self._deliver, tick)
        else:
            waiting.append(copy)

    def _deliver(self, tick: int) -> None:
        model, limits = self.model, self.model.limits
        copies = self.ticks.pop(tick)
        room = max(0, limits.open_executions - model.open)
        started = model.start_bucket.take(model.now, min(len(copies), room))
        for copy in copies[:started]:
            model.start_execution(copy)
        refused = copies[started:]
        model.result.start_throttles += len(refused)
        random, attempts, backoff, arrivals = model.rng.random, self.attempts, self.backoff, model.arrivals
        for copy in refused:
            attempt = attempts[copy] + 1
            attempts[copy] = attempt
            when = model.now + random() * backoff[attempt]
            if attempt > limits.eventbridge_attempts or when - arrivals[copy] > limits.eventbridge_max_age:
                model.outcome_of[copy] = LOST  # to the DLQ: no execution, no copy
            else:
                self._deliver_at(copy, when)


class Dispatcher(Reserving):
    """(b) Events wait as PENDING journal entries; dispatch runs start as many as the pace allows.

    EventBridge -> SQS -> the copy function's admission consumer (batches of up to 10, 2 at a time)
    writes a PENDING entry per event, then, if the dispatcher has nothing planned ahead
    (`dispatcher.is_idle`: plannedUntil absent or past), runs a dispatch at once in that invocation.
    A schedule rule, rate(1 minute), also invokes the `dispatch` action; a lease item keeps runs apart.
    A run plans from `first = max(pacing.next_slot(now, the pacing item's last slot, rate),
    plannedUntil + 1/rate)`, counts with `copier.admission.plan_starts(now, first, MAX_STARTS_PER_RUN,
    rate, HORIZON_SECONDS)` the slots before the next run and past it by the lead and the start margin,
    starts that many of the oldest PENDING copies, one StartExecution after another, and writes the
    planned slot of the last one it started as plannedUntil when it gives the lease back. Each execution
    then reserves its own slot on the pacing item like today's; the dispatcher assigns no slot."""

    name = "dispatcher"
    summary = (
        "a PENDING backlog; dispatch runs (every minute, and at once from admission when nothing is planned)"
        " start what the pace allows (copier.admission.plan_starts)"
    )

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        n = len(model.arrivals)
        self.dispatched = 0  # copies started so far
        self.backlog: deque[int] = deque()  # PENDING entries, oldest first (the journal's by-status index)
        self.leased = False  # the lease item: a run is under way
        self.planned_until: float | None = None  # the schedule item's plannedUntil
        # The admission queue: messages visible from arrival + queue_lag, taken in order; those a throttled
        # invocation returns come back after the visibility timeout (a heap of (visible at, copy)).
        self.received = 0  # messages before this index have been received at least once
        self.returned: list[tuple[float, int]] = []
        self.receives = bytearray(n)  # receives per message: at MAX_RECEIVES the next failure dead-letters it
        self.consumers = 0  # admission invocations under way (the event source's maximum concurrency)
        self.poll_at = math.inf  # when the pollers next look, if a look is scheduled
        self.dead = 0  # messages dead-lettered

    def begin(self) -> None:
        # The schedule's minutes have no relation to the burst: the first falls anywhere in the first minute.
        model = self.model
        model.at(model.arrivals[0] + model.rng.random() * model.limits.dispatch_period, self._minute)
        self._poll_soon(model.arrivals[0] + model.limits.queue_lag)

    # The admission queue's event source: up to `admission_concurrency` invocations of up to 10 messages.
    def _poll_soon(self, when: float) -> None:
        if when < self.poll_at:
            self.poll_at = when
            self.model.at(when, self._poll)

    def _poll(self, _: object) -> None:
        model, limits = self.model, self.model.limits
        if model.now < self.poll_at:
            return  # a later look replaced by an earlier one that has run
        self.poll_at = math.inf
        arrivals, n = model.arrivals, len(model.arrivals)
        while self.consumers < limits.admission_concurrency:
            batch: list[int] = []
            while self.returned and self.returned[0][0] <= model.now and len(batch) < limits.admission_batch:
                batch.append(heapq.heappop(self.returned)[1])
            while (
                self.received < n
                and arrivals[self.received] + limits.queue_lag <= model.now + 1e-9
                and len(batch) < limits.admission_batch
            ):
                batch.append(self.received)
                self.received += 1
            if not batch:
                break
            self._admit(batch)
        if self.consumers < limits.admission_concurrency:
            # Long polling: the pollers take the next message as soon as it is visible.
            following = [self.returned[0][0]] if self.returned else []
            if self.received < n:
                following.append(arrivals[self.received] + limits.queue_lag)
            if following:
                self._poll_soon(max(model.now, min(following)))

    def _admit(self, batch: list[int]) -> None:
        """One admission invocation (copier.steps.admit_batch): an environment of the copy function's."""
        model, limits = self.model, self.model.limits
        cold = model.pool.acquire(model.now)
        if cold is None:  # throttled: the batch goes back to the queue, visible again after the timeout
            model.result.lambda_throttles += 1
            for copy in batch:
                self.receives[copy] += 1
                if self.receives[copy] >= limits.admission_receives:
                    model.outcome_of[copy] = LOST  # the dead-letter queue: no entry, no copy
                    self.dead += 1
                else:
                    heapq.heappush(self.returned, (model.now + limits.admission_visibility, copy))
            self._poll_soon(min(model.now + limits.admission_visibility, self.poll_at))
            return
        self.consumers += 1
        self.own_invocations += 1
        when = model.now + cold + model.uniform(limits.task_overhead)
        for copy in batch:
            # intake: copy_record.written_by_pipeline (a read), journal.admit (a conditional write)
            when += limits.ddb_read + limits.ddb_write
            model.at(when, self._journaled, copy)
        model.at(when + limits.ddb_read, self._admitted, None)  # dispatcher.is_idle: the schedule item

    def _journaled(self, copy: int) -> None:
        self.backlog.append(copy)

    def _admitted(self, _: object) -> None:
        if self.planned_until is None or self.planned_until < self.model.now:
            self._run(admission=True)  # dispatcher.dispatch(), in this invocation
        else:
            self._end_admission()

    def _end_admission(self) -> None:
        self.consumers -= 1
        self.model.pool.release(self.model.now)
        self._poll_soon(self.model.now)  # a consumer is free: the pollers look again

    # The schedule rule's invocations.
    def _minute(self, _: object) -> None:
        model, limits = self.model, self.model.limits
        if self.dispatched + self.dead < len(model.arrivals):  # the model stops; the rule runs on
            model.at(model.now + limits.dispatch_period, self._minute)
            # EventBridge invokes a little after the minute begins.
            model.at(model.now + model.rng.random() * limits.dispatch_jitter, self._invoke, 0)

    def _invoke(self, tries: int) -> None:
        """The rule invokes the copy function asynchronously: it takes one of its environments."""
        model, limits = self.model, self.model.limits
        cold = model.pool.acquire(model.now)
        if cold is None:  # throttled: Lambda's async queue tries again, 1 s doubling to 5 min
            model.result.lambda_throttles += 1
            model.at(model.now + min(2.0**tries, 300.0), self._invoke, tries + 1)
            return
        self.own_invocations += 1
        model.at(model.now + cold + model.uniform(limits.task_overhead), self._run, False)

    # A dispatch run (copier.dispatcher.dispatch), from either: `now` is read as it begins.
    def _run(self, admission: bool) -> None:
        model = self.model
        model.at(model.now + model.limits.ddb_write, self._lease, (model.now, admission))

    def _lease(self, run: tuple[float, bool]) -> None:
        model, limits = self.model, self.model.limits
        if self.leased:  # the conditional write fails: another run holds the lease; the backlog's age, then the end
            model.at(model.now + limits.ddb_read, self._end, run[1])
            return
        self.leased = True
        # The settle query (no STARTED entry here is an hour old), then the pacing item.
        model.at(model.now + 2 * limits.ddb_read, self._plan, run)

    def _plan(self, run: tuple[float, bool]) -> None:
        model, limits = self.model, self.model.limits
        now, admission_run = run
        self._read()  # pacing.last_slot()
        first = pacing.next_slot(now, self.next_slot, limits.copy_rate)
        if self.planned_until is not None:
            first = max(first, self.planned_until + 1.0 / limits.copy_rate)
        slots = admission.plan_starts(now, first, limits.dispatch_max_starts, limits.copy_rate, limits.dispatch_horizon)
        model.at(model.now + limits.ddb_read, self._query, (slots, admission_run))  # journal.pending(len(slots))

    def _query(self, plan: tuple[list[float], bool]) -> None:
        slots, admission_run = plan
        entries = [self.backlog.popleft() for _ in range(min(len(slots), len(self.backlog)))]
        self._start_next(entries, 0, slots, admission_run, self.model.now)

    def _start_next(self, entries: list[int], done: int, slots: list[float], admission_run: bool, when: float) -> None:
        if done == len(entries):
            # The lease given back, plannedUntil the planned slot of the last copy started; the backlog's age.
            limits = self.model.limits
            self.model.at(when + limits.ddb_write, self._give_back, slots[done - 1] if done else None)
            self.model.at(when + limits.ddb_write + limits.ddb_read, self._end, admission_run)
        else:
            self.model.at(when + self.model.limits.start_call, self._started, (entries, done, slots, admission_run))

    def _started(self, start: tuple[list[int], int, list[float], bool]) -> None:
        """One StartExecution (and the entry marked STARTED) returned; throttled, the SDK tries it again."""
        model = self.model
        entries, done, slots, admission_run = start
        if model.start_bucket.take(model.now):
            model.start_execution(entries[done])
            self.dispatched += 1
            self._start_next(entries, done + 1, slots, admission_run, model.now)
        else:
            model.result.start_throttles += 1
            self._start_next(entries, done, slots, admission_run, model.now + model.rng.random())

    def _give_back(self, planned_until: float | None) -> None:
        self.leased = False
        if planned_until is not None:
            self.planned_until = planned_until

    def _end(self, admission_run: bool) -> None:
        if admission_run:
            self._end_admission()
        else:
            self.model.pool.release(self.model.now)


DESIGNS: tuple[type[Design], ...] = (Today, Dispatcher)
SCENARIOS: tuple[tuple[str, int, float], ...] = (
    ("1k in 60 s", 1_000, 60.0),
    ("10k in 60 s", 10_000, 60.0),
    ("50k in 5 min", 50_000, 300.0),
    ("200k in 10 min", 200_000, 600.0),
    ("1M backfill", 1_000_000, 0.0),
)


def simulate(
    design: type[Design], n: int, window: float, *, label: str = "", limits: Limits | None = None, seed: int = 1
) -> Outcome:
    """One design, one scenario: N events spread evenly over `window` seconds (0: all at once)."""
    arrivals = [index * window / n for index in range(n)]
    return Model(design, limits or Limits(), label or f"{n:,} in {window:g} s", arrivals, seed).run()


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


def results_table(outcomes: list[Outcome], limits: Limits) -> str:
    rows = []
    for o in outcomes:
        ratio = o.drain_ratio(limits)
        unmet = o.unmet(limits)
        rows.append(
            [
                o.label,
                "never" if ratio is None else f"{ratio:.3f}",
                f"{o.copied:,}",
                f"{sum(o.failed.values()):,} / {o.timed_out:,}",
                f"{o.copies_lost:,}",
                f"{o.duplicates:,}",
                f"{o.copy_throttles / o.n:.3f}",
                duration(o.longest_wait),
                f"{o.invocations / o.n:.2f}",
                f"{o.transitions / o.n:.1f}",
                "all met" if not unmet else "missed: " + ", ".join(unmet),
            ]
        )
    headers = [
        "scenario", "drain/(N/quota)", "copied", "failed / timed out", "lost", "dup", "throttled/copy",
        "longest wait", "Lambda/copy", "transitions/copy", "targets",
    ]  # fmt: skip
    return table(headers, rows)


def limits_table(outcomes: list[Outcome]) -> str:
    rows = [
        [
            o.label,
            f"{o.lambda_throttles / o.n:.2f}",
            f"{o.peak_concurrency}",
            f"{o.start_throttles:,}",
            duration(o.transition_delay),
            f"{o.peak_item_writes:,} / {o.peak_item_reads:,}",
            f"{o.peak_open:,}",
            duration(o.slowest_admission),
            duration(o.first_call) if o.first_call == o.first_call else "-",
            f"{o.lead_idle:.0f} s in {o.lead_slots:,}",
            ", ".join(f"{error} {count:,}" for error, count in o.failed.most_common()) or "-",
            f"{o.real_seconds:.0f} s",
        ]
        for o in outcomes
    ]
    headers = [
        "scenario", "Lambda throttles/copy", "peak Lambda", "StartExecution throttled", "transition delay",
        "hot item writes/reads per s", "peak open", "slowest event->copy",
        "first call", "idle: lead-set slots", "executions failed by", "model run",
    ]  # fmt: skip
    return table(headers, rows)


def verdict(outcomes: list[Outcome], limits: Limits) -> str:
    """Which design meets issue 10's targets at every N, each design's figures and longest waits, and why."""
    by_design: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_design.setdefault(o.design, []).append(o)
    met = {name: sum(not o.unmet(limits) for o in runs) for name, runs in by_design.items()}
    meeting = [name for name, runs in by_design.items() if met[name] == len(runs)]
    if not meeting:
        head = "neither design meets issue 10's targets at every N."
    elif len(meeting) == len(by_design):
        head = "both designs meet issue 10's targets at every N."
    else:
        head = " and ".join(repr(name) for name in meeting) + " alone meets issue 10's targets at every N."
    text = [f"Which design and why: {head}"]
    for name, runs in by_design.items():
        ratios = [r for r in (o.drain_ratio(limits) for o in runs) if r is not None]
        low, high = (f"{f(ratios, default=math.nan):.3f}" for f in (min, max))
        drains = "never" if not ratios else (low if low == high else f"{low}-{high}") + " x N/quota"
        if ratios and len(ratios) < len(runs):
            drains += f", never in {len(runs) - len(ratios)}"
        missed = [f"{o.label} ({', '.join(o.unmet(limits))})" for o in runs if o.unmet(limits)]
        waits = max(runs, key=lambda o: o.longest_wait)
        backlog = max(runs, key=lambda o: o.slowest_admission)
        text.append(
            f" {name!r} meets them in {met[name]} of {len(runs)} scenarios"
            + (f", missing them at {'; '.join(missed)}" if missed else "")
            + f": drain {drains}, {sum(o.executions_failed for o in runs):,} executions failed or timed out,"
            f" {sum(o.copies_lost for o in runs):,} lost, {sum(o.duplicates for o in runs):,} duplicates, at most"
            f" {max(o.copy_throttles / o.n for o in runs):.3f} throttled calls per copy; its longest wait in an"
            f" execution is {duration(waits.longest_wait)} (at {waits.label}), its slowest event->copy"
            f" {duration(backlog.slowest_admission)} (at {backlog.label}); at most"
            f" {max(o.peak_concurrency for o in runs)} Lambda environments at once,"
            f" {max(o.invocations / o.n for o in runs):.1f} Lambda invocations and"
            f" {max(o.transitions / o.n for o in runs):.0f} state transitions per copy."
        )
        if missed:
            text.append(" Why: " + "; ".join(_causes(runs, limits)) + ".")
    # Meeting the targets first; then copies not made (failed, timed out, lost) before a slower drain.
    unmade = {name: sum(o.executions_failed + o.copies_lost for o in runs) for name, runs in by_design.items()}
    best = max(
        by_design,
        key=lambda name: (name in meeting, -unmade[name], met[name], -max(o.longest_wait for o in by_design[name])),
    )
    runs = by_design[best]
    largest = max(runs, key=lambda o: o.n)
    if best in meeting:
        why = "it meets them at every N" + ("" if len(meeting) == 1 else ", with the shorter longest wait")
    else:
        why = f"it has the fewest executions failed or timed out and copies lost ({unmade[best]:,})"
    text.append(f" The figures favour {best!r}: {why}.")
    if best == Dispatcher.name:
        sqs_holds = 14 * DAY * limits.copy_rate
        text.append(
            " Its price: copies wait in a backlog instead of in executions, up to"
            f" {duration(largest.slowest_admission)} at {largest.label}; SQS keeps a message 14 days at most,"
            f" about {sqs_holds:,.0f} copies at this pace,"
            " so the backlog must be held without a time limit (the journal) and drained in order by the"
            " dispatcher's runs, one at a time (the lease): a minute's, and the admission consumer's when nothing"
            " is planned."
        )
    else:
        text.append(
            f" Its price: copies wait inside executions, up to {duration(max(o.longest_wait for o in runs))},"
            f" against an execution timeout of {duration(limits.execution_timeout)}."
        )
    return "".join(text)


def _causes(runs: list[Outcome], limits: Limits) -> list[str]:
    """What the figures say went wrong with a design, worst first."""
    causes = []
    throttled = max(runs, key=lambda o: o.lambda_throttles / o.n)
    if throttled.lambda_throttles:
        failed = sum(o.failed["Lambda.TooManyRequestsException"] for o in runs)
        causes.append(
            f"{limits.concurrency} Lambda environments cannot run ValidateInput and ReserveCopySlot for every event"
            f" as it arrives ({throttled.lambda_throttles / throttled.n:.1f} throttled invocations per copy at"
            f" {throttled.label}), and {failed:,} executions run out of retries (Lambda.TooManyRequestsException)"
        )
    timed_out = sum(o.timed_out for o in runs)
    if timed_out:
        others = sum(sum(o.failed.values()) for o in runs)
        causes.append(
            f"{timed_out:,} executions time out waiting for slots reserved past the 2-day timeout (all that a"
            f" horizon cap on the reservation, design (c), would remove; not the {others:,} executions that fail)"
        )
    worst = max(runs, key=lambda o: o.copy_throttles / o.n)
    if worst.copy_throttles / worst.n > 0.05:
        causes.append(
            f"up to {worst.copy_throttles / worst.n:.2f} CopyImageSet calls per copy are throttled at {worst.label};"
            f" each goes back to ReserveCopySlot for a new slot, and {sum(o.failed['CopyThrottled'] for o in runs):,}"
            f" executions reach the bound of {limits.reservations} reserved slots (CopyThrottled)"
        )
    slow = [o for o in runs if "drain" in o.unmet(limits) and o.drain is not None]
    if slow:
        o = max(slow, key=lambda o: o.drain_ratio(limits) or 0.0)
        best = limits.copy_quota / limits.copy_rate * (o.n - 1) / o.n
        causes.append(
            f"at {o.label} the copies drain in {o.drain_ratio(limits):.3f} x N/quota against 1.05: calls 1/rate apart"
            f" take {best:.3f} (copyRatePerSecond {limits.copy_rate:g}), the first call comes {o.first_call:.0f} s"
            f" after the first event ({o.first_call / (o.n / limits.copy_quota):.4f}), and {o.lead_slots:,} slots"
            f" set by the hold lead, not the schedule, leave it idle {o.lead_idle:.0f} s"
            f" ({o.lead_idle / (o.n / limits.copy_quota):.4f}): an execution reserves no sooner than its read +"
            f" {limits.hold_lead:g} s, so a schedule less than that (and the execution's start) ahead stands idle"
        )
    hot = max(runs, key=lambda o: o.peak_item_writes)
    if hot.peak_item_writes >= 0.5 * limits.partition_writes or hot.peak_item_reads >= 0.5 * limits.partition_reads:
        causes.append(
            f"the pacing item reaches {hot.peak_item_writes:,} writes and {hot.peak_item_reads:,} reads in a second"
            f" at {hot.label}, against its partition's {limits.partition_writes:,.0f} and"
            f" {limits.partition_reads:,.0f}"
        )
    largest = max(runs, key=lambda o: o.n)
    if largest.copied < largest.n:
        causes.append(f"at {largest.label} it copies {largest.copied:,} of {largest.n:,}")
    return causes


def report(outcomes: list[Outcome], limits: Limits, real_seconds: float) -> str:
    parts = [
        f"Scale model: {len(outcomes)} runs in {real_seconds:.0f} s of real time. Quota {limits.copy_quota:g}/s:"
        " N copies need N / quota seconds at best.",
        "",
        "Assumed figures",
        table(["figure", "value", "source"], [list(row) for row in limits.assumptions()]),
    ]
    for design in DESIGNS:
        runs = [o for o in outcomes if o.design == design.name]
        if runs:
            parts += ["", f"Design {design.name!r}: {design.summary}", results_table(runs, limits)]
            parts += ["where the limits bind:", limits_table(runs)]
    parts += ["", verdict(outcomes, limits)]
    return "\n".join(parts)


def _run(job: tuple[str, str, int, float, int, int]) -> Outcome:
    name, label, n, window, seed, concurrency = job
    design = next(d for d in DESIGNS if d.name == name)
    return simulate(design, n, window, label=label, limits=Limits(concurrency=concurrency), seed=seed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1k and 10k only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=Limits.concurrency, help="Lambda concurrency available")
    args = parser.parse_args()
    limits = Limits(concurrency=args.concurrency)
    scenarios = SCENARIOS[:2] if args.quick else SCENARIOS
    jobs = [(d.name, label, n, window, args.seed, args.concurrency) for label, n, window in scenarios for d in DESIGNS]
    started = time.perf_counter()
    # Each run is one process's event loop; the largest go first so both cores stay busy.
    largest_first = sorted(jobs, key=lambda job: -job[2])
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        finished = dict(zip(largest_first, pool.map(_run, largest_first), strict=True))
    outcomes = [finished[job] for job in jobs]
    print(report(outcomes, limits, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
