"""One deployed pipeline (one data store) in the account, each copy taking the deployed way: admission
(EventBridge -> SQS -> the function's batches), the copy journal's backlog in its two lanes (live: the events;
bulk: a backfill's copies, admitted before the run begins), the dispatcher's runs (lease, plan, the slots shared
by the lanes, pacing write, starts), each execution's states (FindPrimaryOfSeries under merge-into-primary,
WaitForCopySlot, StartCopy, CopyImageSet accepted or pushed back, AwaitCopy, CheckCopy) with the HealthImaging reads
each makes, the completion events that wake it, and the reconciliation sweep's SearchImageSets pages. The decisions
are the function's own code (`copier.dispatcher`, `copier.admission`, `copier.pacing`, `copier.copy_status`,
`copier.budgets`); the services it calls are services.py's."""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from benchmarks.scale.limits import DAY, SWEEP_PAGE_SIZE, Limits
from benchmarks.scale.outcome import Outcome
from benchmarks.scale.services import Account, LambdaPool, PerSecond
from copier import copy_status, journal, pacing
from copier.budgets import Operation
from copier.dispatcher import planning, schedule, settling, starting
from copier.settings import CopyPolicy

PENDING, COPIED, FAILED = range(3)
# The reads each step makes (copier.budgets.CALLS_PER_COPY is their sum; tests/test_scale_model.py checks it).
FIND_PRIMARY_READS = (Operation.GET_IMAGE_SET, Operation.GET_IMAGE_SET_METADATA, Operation.SEARCH_IMAGE_SETS)
MERGE_START_READS = (Operation.GET_IMAGE_SET,)  # the destination (the source read on this slot: _source_known)
MERGE_RETRY_READS = (Operation.GET_IMAGE_SET, Operation.GET_IMAGE_SET)  # retried or pushed back: the source too
SNAPSHOT_RETRY_READS = (Operation.GET_IMAGE_SET,)  # a snapshot copy's StartCopy after a pushback reads its source
CHECK_READS = (Operation.GET_IMAGE_SET,)
# A read chain: the execution, the reads left, the attempt at the first, what follows, the step to retry.
ReadChain = tuple["Execution", tuple[Operation, ...], int, Callable[["Execution"], None], Callable[["Execution"], None]]


class Execution:
    """One copy's execution: its slot, its wait, what its retriers used."""

    __slots__ = (
        "accepted_at",
        "copy",
        "deadline",
        "event_at",
        "lands_at",
        "next_wait",
        "reservations",
        "since",
        "slot",
        "transient",
        "waiting",
        "woken_by",
    )

    def __init__(self, copy: int, slot: float, deadline: float) -> None:
        self.copy, self.slot, self.deadline = copy, slot, deadline
        self.reservations = 0
        self.transient = 0
        self.accepted_at = self.lands_at = -1.0
        self.event_at = -math.inf  # the latest completion event recorded on its wake item
        self.woken_by: float | None = None  # the second of the event that woke it (CheckCopy's wake.eventAt)
        self.since = 0.0  # AwaitCopy's wakeSince
        self.next_wait = 0
        self.waiting = 0  # the wait under way (a generation: a stale timeout finds another)


class Stack:
    """One deployed pipeline (one data store) in the account: admission, backlog, dispatcher, executions."""

    def __init__(
        self,
        account: Account,
        limits: Limits,
        label: str,
        arrivals: list[float],
        name: str = "",
        *,
        bulk: int = 0,
        window: tuple[float, float] | None = None,
    ) -> None:
        """`arrivals`: when each copy's event arrives, but the first `bulk` copies': a backfill's, in the bulk lane
        from the start (their arrivals: when it admitted them). `window`: a span whose accepted calls are counted
        per lane (the bulk lane's share of them)."""
        self.account, self.limits, self.arrivals = account, limits, arrivals
        self.name = name
        self.bulk, self.window = bulk, window
        n = len(arrivals)
        self.pool = LambdaPool(limits.lambda_concurrency, limits.cold_start, limits.keep_alive)
        self.outcome_of = bytearray(n)
        self.accepted = bytearray(n)
        self.result = Outcome(label, limits.copy_quota, n, limits.physical_limit, limits.concurrent_copies, bulk=bulk)
        self.planned = limits.planned  # the dispatcher's planned rate: copier.budgets, under the stack's budgets
        self.merge = limits.policy is CopyPolicy.MERGE_INTO_PRIMARY
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
        # Admission: the queue, its consumers; the backlog (PENDING entries, oldest first), one queue per lane.
        self.live_lane: deque[int] = deque()
        self.bulk_lane: deque[int] = deque(range(bulk))  # the bulk lane
        self.received = bulk
        self.consumers = 0
        self.poll_at = math.inf
        self.leased = False
        self.seen: dict[str, Any] = {}  # dispatcher.is_idle's memory (one for all environments: optimistic)
        self.dispatched = 0
        self.first_event = min(arrivals[:1] + arrivals[bulk : bulk + 1]) if arrivals else 0.0
        self.last_accept = -math.inf
        self.done = 0
        # The completion queue: events waiting for a consumer, consumers under way.
        self.events: deque[tuple[float, Execution]] = deque()
        self.wake_consumers = 0

    def begin(self) -> None:
        account, limits = self.account, self.limits
        account.at(self.first_event + account.rng.random() * limits.dispatch_period, self._minute)
        if limits.reconciliation_interval:
            account.at(self.first_event + limits.reconciliation_interval, self._sweep)
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
                # The batching window: the poller waits for a full batch, or the window's end. Fewer events than a
                # batch left to come: only the window's end (waiting for the last one would wait for now again).
                fills = self.arrivals[last] + limits.queue_lag if last - self.received + 1 == batch_size else math.inf
                self._poll_soon(min(first + limits.batching_window, fills))
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
        self.live_lane.append(copy)
        self.pending_writes.add(self.account.now)

    def _admitted(self, _: object) -> None:
        """dispatcher.is_idle: the pacing item read, unless this environment knows a plan runs past now."""
        if not self.seen or schedule.wants_a_run(self.seen, self.account.now):
            self._call("dynamodb:GetItem")
            self.seen = dict(self.pacing)
        if schedule.wants_a_run(self.pacing, self.account.now):
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
        settled = now - float(self.pacing.get("settledAt", 0)) >= settling.SETTLE_EVERY_SECONDS
        if settled:
            self._call("dynamodb:Query")  # ended executions to settle
        pace, quiet = pacing.adapted(self.pacing, self.planned.rate)
        self.result.lowest_pace = min(self.result.lowest_pace, pace)
        if self.live_lane or self.bulk_lane:
            self.result.last_pace = pace
        most = math.ceil(pace * schedule.HORIZON_SECONDS) + 1
        self._call("dynamodb:Query", 2 * (1 + most // 1_500))  # each lane's oldest, a page per 1 MB
        live = [self.arrivals[copy] for copy in itertools.islice(self.live_lane, most)]
        bulk = [self.arrivals[copy] for copy in itertools.islice(self.bulk_lane, most)]
        plan = planning.plan_run(
            self.pacing,
            now,
            pace=pace,
            pending=len(live) + len(bulk),
            capacity=limits.concurrent_copies,
            started_slots=self._started_slots,
            landed_since=self._landed_since,
        )
        rate = planning.promised_rate(self.planned.rate, limits.concurrent_copies, plan.copy_seconds)
        plan = planning.shared_by_lanes(
            plan, self.pacing, live=live, bulk=bulk, rate=rate, bulk_minimum_share=limits.bulk_minimum_share
        )
        fields = planning.after_run(self.pacing, plan, pace=pace, quiet_runs=quiet, now=now, settled=settled)
        for name, value in fields.items():
            self.pacing[name] = self.pacing.get(name, 0) + value if name in planning.ADDED_FIELDS else value
        self._pacing_write()  # the plan
        self.seen = dict(self.pacing)
        copies = [self.live_lane.popleft() for _ in range(plan.split.live)]
        copies += [self.bulk_lane.popleft() for _ in range(plan.split.bulk)]
        result = self.result
        live_head = self.arrivals[self.live_lane[0]] if self.live_lane else None
        bulk_head = self.arrivals[self.bulk_lane[0]] if self.bulk_lane else None
        result.peak_late = max(result.peak_late, planning.lateness(plan.live_due, live_head, now))
        result.peak_late_bulk = max(result.peak_late_bulk, planning.lateness(plan.bulk_due, bulk_head, now))
        self._call("dynamodb:TransactWriteItems", math.ceil(len(copies) / journal.MARKS_PER_TRANSACTION))
        when = now + 3 * limits.ddb_read + 2 * limits.ddb_write
        interval = max(1.0 / starting.START_RATE, limits.start_call / starting.START_WORKERS)
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
        self._wait_for_slot(execution, self._enter(2))  # RouteCopy, WaitForCopySlot (or WaitForSlotToFindPrimary)

    def _wait_for_slot(self, execution: Execution, ready: float) -> None:
        until = max(ready, math.floor(execution.slot - pacing.HOLD_LEAD_SECONDS))  # pacing.wait_until's second
        self.result.longest_wait = max(self.result.longest_wait, until - self.arrivals[execution.copy])
        # merge-into-primary: WaitForSlotToFindPrimary, then FindPrimaryOfSeries on the slot (its reads paced too).
        self.account.at(until, self._find_primary if self.merge else self._start_copy, execution)

    # --- merge-into-primary: the primary of the source's series -----------------------------------
    def _find_primary(self, execution: Execution) -> None:
        self._task(execution, self._finding)

    def _finding(self, execution: Execution, ready: float) -> None:
        """FindPrimaryOfSeries: the source (GetImageSet), its series (GetImageSetMetadata), the primary of the series
        (SearchImageSets)."""
        self.account.at(ready, self._reads, (execution, FIND_PRIMARY_READS, 0, self._found, self._find_primary))

    def _found(self, execution: Execution) -> None:
        self._release()
        self._enter()  # FoundOnSlot?
        self._start_copy(execution)

    # --- HealthImaging reads -------------------------------------------------------------------
    def _reads(self, chain: ReadChain) -> None:
        """A step's reads, one after another; one throttled is tried again as botocore does (read_attempts, U(0,1) x
        min(2^i, 20) s), then the step fails HealthImagingUnavailable and the transient retrier runs it again."""
        execution, reads, attempt, then, again = chain
        if not reads:
            then(execution)
            return
        account, limits = self.account, self.limits
        operation = reads[0]
        self._call(f"medical-imaging:{operation}")
        if account.read(operation):
            after = account.now + account.uniform(limits.read_latency)
            account.at(after, self._reads, (execution, reads[1:], 0, then, again))
            return
        self.result.read_throttled[operation] += 1
        if attempt + 1 < limits.read_attempts:
            backoff = account.rng.random() * min(2.0 ** (attempt + 1), 20.0)
            account.at(account.now + backoff, self._reads, (execution, reads, attempt + 1, then, again))
            return
        self._release()
        self._retry(execution, "HealthImagingUnavailable", again)

    # --- the reconciliation sweep ------------------------------------------------------------------
    def _sweep(self, _: object) -> None:
        """Every reconciliation interval: SearchImageSets pages of the image sets created in the last two intervals up
        to 5 minutes ago (each already in the journal: nothing admitted), one after another."""
        account, limits = self.account, self.limits
        if self.finished:
            return
        account.at(account.now + limits.reconciliation_interval, self._sweep)
        until = account.now - 300.0
        since = until - 2 * limits.reconciliation_interval
        found = bisect.bisect_right(self.arrivals, until, lo=self.bulk) - bisect.bisect_left(
            self.arrivals, since, lo=self.bulk
        )
        self._sweep_page((max(1, math.ceil(found / SWEEP_PAGE_SIZE)), 0))

    def _sweep_page(self, sweep: tuple[int, int]) -> None:
        pages, attempt = sweep
        account, limits = self.account, self.limits
        self._call(f"medical-imaging:{Operation.SEARCH_IMAGE_SETS}")
        if account.read(Operation.SEARCH_IMAGE_SETS):
            self.result.sweep_pages += 1
            if pages > 1:
                account.at(account.now + account.uniform(limits.read_latency) + 0.1, self._sweep_page, (pages - 1, 0))
            return
        self.result.read_throttled[Operation.SEARCH_IMAGE_SETS] += 1
        if attempt + 1 < limits.read_attempts:
            backoff = account.rng.random() * min(2.0 ** (attempt + 1), 20.0)
            account.at(account.now + backoff, self._sweep_page, (pages, attempt + 1))
            return
        self.result.sweeps_failed += 1  # the next sweep's window overlaps this one's

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
        """StartCopy: the idempotency record and the copy record; its reads (the first attempt on the dispatcher's slot:
        merge-into-primary's the destination, snapshot's none, copy_start._source_known; a later one the source too),
        held to the slot, CopyImageSet."""
        self._call("dynamodb:PutItem", 2)  # Powertools' in-progress record, the copy record CALLING
        first = not execution.reservations and not execution.transient  # copy_start._source_known
        if self.merge:
            reads = MERGE_START_READS if first else MERGE_RETRY_READS
        else:
            reads = () if first else SNAPSHOT_RETRY_READS
        self.account.at(ready, self._reads, (execution, reads, 0, self._hold, self._start_copy))

    def _hold(self, execution: Execution) -> None:
        now = self.account.now
        call = now + pacing.hold_seconds(execution.slot, now) + self.account.uniform(self.limits.copy_call_latency)
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
        self._accepted_in_lane(execution.copy)
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
            account.now, pacing.last_slot(self.pacing), pacing.current_pace(self.pacing, self.planned.rate)
        )
        self.pacing["nextSlot"] = slot
        execution.slot = slot
        execution.reservations += 1
        self._release()
        ready = self._enter()  # WaitForCopySlot
        account.at(max(ready, math.floor(slot - pacing.HOLD_LEAD_SECONDS)), self._start_copy, execution)

    # --- waiting for the copy: the completion event, or the fallback -----------------------------
    def _await(self, execution: Execution) -> None:
        """AwaitCopy: its token on the wake items (Step Functions' own DynamoDB call, a transaction of the
        destination's and the source's), unless an event at or after wakeSince is there already; then the event
        or the fallback wait."""
        account = self.account
        ready = self._enter()
        self._call("dynamodb:TransactWriteItems")  # its token on the destination's and the source's wake items
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
            execution.woken_by = at
            self._call("states:SendTaskSuccess")
            self._call("dynamodb:UpdateItem")  # the token taken off the other image set's wake item
            self.account.wakes.add(self.account.now)
            execution.waiting += 1
            self._check(execution)

    def _check(self, execution: Execution) -> None:
        self._task(execution, self._checking)

    def _checking(self, execution: Execution, ready: float) -> None:
        """CheckCopy: GetImageSet on the version the copy produces."""
        self.account.at(ready, self._reads, (execution, CHECK_READS, 0, self._checked, self._check))

    def _checked(self, execution: Execution) -> None:
        account, limits = self.account, self.limits
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
        if slot is not None:  # journal.landed_since: to its landing (its version's updatedAt, the event), or this look
            landed = copy_status.landed_at(
                execution.lands_at, execution.woken_by, int(execution.accepted_at), account.now
            )
            self.landed.append((account.now, (landed or account.now) - slot))
        self.outcome_of[execution.copy] = COPIED
        self.done += 1

    def _accepted_in_lane(self, copy: int) -> None:
        """A live copy's wait, from its event to its CopyImageSet; the bulk lane's last call; calls in the window."""
        now, result = self.account.now, self.result
        bulk = copy < self.bulk
        if bulk:
            result.bulk_last_accept = max(result.bulk_last_accept, now)
        else:
            result.live_waits.append(now - self.arrivals[copy])
            result.live_accepts.append(now)
        if self.window is not None and self.window[0] <= now < self.window[1]:
            result.window_calls[bulk] += 1

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
        result.peak_reads = {operation: peak.peak for operation, peak in account.read_peaks.items()}
        result.peak_wakes = account.wakes.peak
        result.real_seconds = real_seconds
        return result
