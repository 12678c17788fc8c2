"""The paced dispatcher (action `dispatch`, run every minute by a schedule rule, and at once by the
admission queue's consumer when nothing is planned): starts the backlog's oldest copies, as many as the
CopyImageSet schedule and the data store's concurrent copies have room for until just past its next run.

The backlog is the copy journal's PENDING entries (events from the admission queue, reconciliation,
backfill, `ops.cli retry`), durable for as long as they take. A run (`dispatch`, below):

1. takes the lease on the pacing item (lease.py: one run at a time; its answer is the schedule: the last slot
   handed out, the adaptive pace and its counts, copies in flight as last counted); the first run after an
   upgrade from 0.1.0 also waits for a run of 0.1.0 still holding that release's lease, and deletes its item;
2. adapts the pace to the last period's pushbacks (copier.pacing.adapted: AIMD, for a quota shared with
   other clients of the account);
3. reads the oldest PENDING entries, as many as the pace can start before the next run (HORIZON_SECONDS,
   schedule.py);
4. gives each a slot (planning.py, with copier.admission.plan_starts) after the last one handed out, 1/pace
   apart, and a permit of the concurrent-copy quota: when the copies in flight could reach the quota, it counts
   them from the journal (a STARTED entry holds one from its slot until a copy's duration later, then is
   believed to land within seconds: an entry a crash left STARTED holds it no longer than a copy would) and
   measures how long a copy takes from the copies that landed since;
5. writes the block of slots on the pacing item (one conditional write for the whole run: a copy started
   by hand, or a call pushed back, reserves its own slot after them), and when the backlog's next copy is due
   (due_after: the backlog served at the rate the settings promise);
6. starts the executions (starting.py), a few at a time and at most START_RATE a second (the account's
   StartExecution quota is shared: Step Functions' smallest Regions refill 150 a second), each with its plan
   and slot as input, marking each entry STARTED with its slot;
7. gives the lease back, and writes how late the backlog's oldest copy is (BacklogLateSeconds: how long it
   has waited beyond what the copies admitted before it explain, so that its alarm means trouble whatever the
   backlog's size: a 1M backfill is no later than one import).

Once a quarter of an hour, a run first settles the executions that ended without a word (settling.py). The
admission queue's consumer asks `is_idle` (schedule.py's wants_a_run, on the pacing item) before its own run.

So whatever the backlog's size or the quota, executions never wait near their timeout, a copy costs no
pacing write, copies in flight stay under the data store's quota, and a copy started by hand still gets a
slot within about a minute. Execution names are the entry's image set version and dispatch count, so a
run that dies between StartExecution and marking the entry STARTED starts nothing twice: the next run finds
the execution (ExecutionAlreadyExists), adopts it if it still runs (or waits for its redrive), and starts
the entry under the next name if it ended (even one that succeeded: the entry still PENDING says its journal
write was lost; the next execution meets the copy record and copies nothing twice).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from copier import clock, journal, pacing, table
from copier.dispatcher import lease, planning, schedule, settling, starting
from copier.errors import FunctionMisconfigured
from copier.settings import load_settings

logger = Logger(child=True)
metrics = Metrics()


@dataclass(frozen=True)
class DispatchResult:
    started: list[str]  # names of the executions started
    oldest_pending_seconds: float  # the backlog's age after this run
    ran: bool = True  # False: another run held the lease


def dispatch() -> DispatchResult:
    """One run: the schedule rule's every minute, or the admission queue's when the schedule is idle."""
    settings = load_settings()
    if not settings.state_machine_arn:
        raise FunctionMisconfigured("function settings are invalid: STATE_MACHINE_ARN")
    now = clock.now()
    lease_until = now + lease.LEASE_SECONDS
    state = lease.take_lease(now, lease_until)
    if state is None:
        logger.info("Another dispatch run holds the lease: nothing to do")
        return DispatchResult([], _oldest_pending_seconds(now), ran=False)
    if "runAt" not in state and not lease.previous_release_schedule_ended(now):
        lease.give_back_lease(lease_until)
        logger.info("A dispatch run of the previous release holds its lease: nothing to do")
        return DispatchResult([], _oldest_pending_seconds(now), ran=False)
    try:
        settled = now - float(state.get("settledAt", 0)) >= settling.SETTLE_EVERY_SECONDS
        if settled:
            settling.settle_ended_executions(now)
        pace, quiet_runs = pacing.adapted(state, settings.copy_rate_per_second)
        most = math.ceil(pace * schedule.HORIZON_SECONDS) + 1
        entries = journal.pending(most + 1)  # one more than can start: the backlog's age after this run
        plan = planning.planned(
            state, now, pace=pace, quiet_runs=quiet_runs, entries=entries[:most], settings=settings, settled=settled
        )
        _remember_planned({**state, **planning.after_run(state, plan, pace=pace, quiet_runs=quiet_runs, now=now)})
        # The lease is held until the run's copies are marked STARTED: a run that counted the copies in flight
        # meanwhile would miss them and hand out permits the concurrent-copy quota does not have.
        started = starting.start_all(entries[: len(plan.slots)], plan.slots, settings.state_machine_arn)
    finally:
        lease.give_back_lease(lease_until)
    waiting = [entry for entry in entries if starting.execution_name(entry) not in started]
    head = float(waiting[0]["updatedAt"]) if waiting else None
    oldest = 0.0 if head is None else max(0.0, clock.now() - head)
    late = planning.lateness(plan.due, head, clock.now())
    metrics.add_metric(name="CopiesDispatched", unit=MetricUnit.Count, value=len(started))
    metrics.add_metric(name="OldestPendingAgeSeconds", unit=MetricUnit.Seconds, value=oldest)
    # Only runs write it, 0 with no backlog: DispatcherSilent counts them.
    metrics.add_metric(name="BacklogLateSeconds", unit=MetricUnit.Seconds, value=late)
    metrics.add_metric(name="CopyPace", unit=MetricUnit.CountPerSecond, value=pace)
    logger.info(
        "Dispatch run",
        extra={
            "slots": len(plan.slots),
            "started": len(started),
            "pace": pace,
            "oldestPending": oldest,
            "backlogLate": late,
        },
    )
    return DispatchResult(started, oldest)


# The schedule as this environment last saw it: while it says no run is needed, a burst's admission batches
# read the pacing item once, not once each (a newer schedule can only be busier).
_seen: dict[str, Any] = {}


def _remember_planned(state: Mapping[str, Any]) -> None:
    _seen.clear()
    _seen.update({name: state[name] for name in ("nextSlot", "busyUntil", "runAt") if name in state})


def is_idle() -> bool:
    """The admission queue's consumer dispatches at once when the schedule wants a run (wants_a_run) rather
    than leave new copies waiting up to a minute for the next scheduled one (the first copy of a burst, a
    quiet day's import, a burst's events arriving after the last run)."""
    if _seen and not schedule.wants_a_run(_seen, clock.now()):
        return False
    state = table.get_item(pacing.PACING_KEY) or {}
    _remember_planned(state)
    return schedule.wants_a_run(state, clock.now())


def _oldest_pending_seconds(now: float) -> float:
    oldest = journal.oldest_pending_change()
    return 0.0 if oldest is None else max(0.0, now - oldest)
