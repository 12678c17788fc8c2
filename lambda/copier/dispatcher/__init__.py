"""The paced dispatcher (action `dispatch`, run every minute by a schedule rule, and at once by the
admission queue's consumer when nothing is planned): starts the backlog's oldest copies, new imports first, as
many as the CopyImageSet schedule and the data store's concurrent copies have room for until just past its next
run.

The backlog is the copy journal's PENDING entries, durable for as long as they take, in two lanes: live (events
from the admission queue, reconciliation) and bulk (backfills, a large `ops.cli retry`). A run (`dispatch`):

1. takes the lease on the pacing item (lease.py: one run at a time; its answer is the schedule: the last slot
   handed out, the adaptive pace and its counts, copies in flight as last counted); the first run after an
   upgrade from 0.1.0 also waits for a run of 0.1.0 still holding that release's lease, and deletes its item;
2. adapts the pace to the last period's pushbacks (copier.pacing.adapted: AIMD, for a quota shared with
   other clients of the account), up to the copies a second every HealthImaging operation's budget allows under
   the copy policy (copier.budgets: copyRatePerSecond, or fewer where the reads bind);
3. reads each lane's oldest PENDING entries (journal.waiting), as many as the pace can start before the next
   run (HORIZON_SECONDS, schedule.py);
4. gives the run's copies their slots (planning.py, with copier.admission.plan_starts) after the last one handed
   out, 1/pace apart, and a permit of the concurrent-copy quota: when the copies in flight could reach the
   quota, it counts them from the journal (a STARTED entry holds one from its slot until a copy's duration
   later, then is believed to land within seconds: an entry a crash left STARTED holds it no longer than a copy
   would) and measures how long a copy takes from the copies that landed since; the live lane takes the first
   slots, the bulk lane the rest and at least bulkMinimumShare of them (admission.split_lanes). No run plans
   past the next one's first slot, so a new import admitted after a run waits for the next run and the
   seconds of slots it planned ahead, never behind bulk work;
5. writes the block of slots on the pacing item (one conditional write for the whole run: a copy started
   by hand, or a call pushed back, reserves its own slot after them), and when each lane's next copy is due
   (due_after, planning.shared_by_lanes: the live lane served at the rate the settings promise less the bulk
   lane's minimum share while it has copies, the bulk lane at what live leaves it);
6. starts the executions (starting.py), a few at a time and at most START_RATE a second (the account's
   StartExecution quota is shared: Step Functions' smallest Regions refill 150 a second), each with its plan
   and slot as input, marking each entry STARTED with its slot;
7. gives the lease back, and writes per lane how late its oldest copy is (LiveBacklogLateSeconds,
   BulkBacklogLateSeconds: how long it has waited beyond what the copies admitted before it explain, so that
   their alarms mean trouble whatever the backlog's size: a 1M backfill is no later than one import);
8. a scheduled run then labels PENDING entries of 0.2.0 (no lane) for the lanes' index (copier.legacy_lanes)
   with the time it has left.

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

from copier import budgets, clock, journal, legacy_lanes, pacing, table
from copier.dispatcher import lease, planning, schedule, settling, starting
from copier.errors import FunctionMisconfigured, TableUnavailable
from copier.settings import load_settings

logger = Logger(child=True)
metrics = Metrics()


@dataclass(frozen=True)
class DispatchResult:
    started: list[str]  # names of the executions started, the live lane's first
    oldest_pending_seconds: float  # the backlog's age after this run (its oldest copy, either lane)
    ran: bool = True  # False: another run held the lease


# Each lane's metrics, as a run writes them: copies dispatched, its oldest pending copy's age, how late that is.
LANE_METRICS = {
    (journal.Lane.LIVE, "dispatched"): "LiveCopiesDispatched",
    (journal.Lane.LIVE, "age"): "LiveOldestPendingAgeSeconds",
    (journal.Lane.LIVE, "late"): "LiveBacklogLateSeconds",
    (journal.Lane.BULK, "dispatched"): "BulkCopiesDispatched",
    (journal.Lane.BULK, "age"): "BulkOldestPendingAgeSeconds",
    (journal.Lane.BULK, "late"): "BulkBacklogLateSeconds",
}

# The copies a second each HealthImaging operation's budget allows (copier.budgets): the lowest binds.
ALLOWED_BY_METRIC = {
    budgets.Operation.COPY_IMAGE_SET: "CopyRateAllowedByCopyImageSet",
    budgets.Operation.GET_IMAGE_SET: "CopyRateAllowedByGetImageSet",
    budgets.Operation.GET_IMAGE_SET_METADATA: "CopyRateAllowedByGetImageSetMetadata",
    budgets.Operation.SEARCH_IMAGE_SETS: "CopyRateAllowedBySearchImageSets",
}


def dispatch(*, scheduled: bool = True) -> DispatchResult:
    """One run: the schedule rule's every minute (`scheduled`: it also labels entries of 0.2.0 for the lanes'
    index, legacy_lanes), or the admission queue's when the schedule is idle."""
    settings = load_settings()
    if not settings.state_machine_arn:
        raise FunctionMisconfigured("function settings are invalid: STATE_MACHINE_ARN")
    began = clock.monotonic()
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
        planned = budgets.planned_rate_of(settings)
        pace, quiet_runs = pacing.adapted(state, planned.rate)
        most = math.ceil(pace * schedule.HORIZON_SECONDS) + 1
        waiting = _waiting(most + 1)  # one more than can start, in each lane: its age after this run
        live, bulk = waiting[journal.Lane.LIVE][:most], waiting[journal.Lane.BULK][:most]
        plan = planning.planned(
            state,
            now,
            pace=pace,
            quiet_runs=quiet_runs,
            live=live,
            bulk=bulk,
            settings=settings,
            planned_rate=planned.rate,
            settled=settled,
        )
        _remember_planned({**state, **planning.after_run(state, plan, pace=pace, quiet_runs=quiet_runs, now=now)})
        # The lease is held until the run's copies are marked STARTED: a run that counted the copies in flight
        # meanwhile would miss them and hand out permits the concurrent-copy quota does not have.
        chosen = [*live[: plan.split.live], *bulk[: plan.split.bulk]]  # the run's slots in order: live's first
        started = starting.start_all(chosen, plan.slots, settings.state_machine_arn)
    finally:
        lease.give_back_lease(lease_until)
    ended = clock.now()
    lanes: dict[str, dict[str, float]] = {}
    for lane, due in ((journal.Lane.LIVE, plan.live_due), (journal.Lane.BULK, plan.bulk_due)):
        left = [entry for entry in waiting[lane] if starting.execution_name(entry) not in started]
        head = float(left[0]["updatedAt"]) if left else None
        figures = {
            "dispatched": len(waiting[lane]) - len(left),
            "age": 0.0 if head is None else max(0.0, ended - head),
            # Only runs write it, 0 with no backlog: DispatcherSilent counts the live lane's.
            "late": planning.lateness(due, head, ended),
        }
        for figure, value in figures.items():
            unit = MetricUnit.Count if figure == "dispatched" else MetricUnit.Seconds
            metrics.add_metric(name=LANE_METRICS[lane, figure], unit=unit, value=value)
        lanes[lane.value] = figures
    metrics.add_metric(name="CopyPace", unit=MetricUnit.CountPerSecond, value=pace)
    metrics.add_metric(name="PlannedCopyRate", unit=MetricUnit.CountPerSecond, value=planned.rate)
    for operation, allowed in planned.allowed.items():
        metrics.add_metric(name=ALLOWED_BY_METRIC[operation], unit=MetricUnit.CountPerSecond, value=allowed)
    logger.info(
        "Dispatch run",
        extra={
            "slots": len(plan.slots),
            "pace": pace,
            "plannedRate": planned.rate,
            "boundBy": planned.binding,
            "lanes": lanes,
        },
    )
    if scheduled:
        _label_legacy_entries(state, now, began)
    return DispatchResult(started, max(figures["age"] for figures in lanes.values()))


def _waiting(limit: int) -> dict[journal.Lane, list[dict[str, Any]]]:
    """Each lane's oldest waiting entries, from the lanes' index; the live lane first: a promotion between the two
    reads moves an entry from bulk to live, so it is found in one lane at most. While the index is being built
    (the upgrade that adds it: CloudFormation starts its backfill and goes on, DynamoDB refuses its reads until it
    is done, minutes for millions of entries), from journalByStatus's oldest PENDING entries, each in its lane."""
    try:
        return {lane: journal.waiting(lane, limit) for lane in (journal.Lane.LIVE, journal.Lane.BULK)}
    except TableUnavailable as error:
        if error.code != "ValidationException":
            raise
    logger.warning("The lanes' index cannot be read yet (being built?): the oldest PENDING entries, by their lanes")
    return journal.pending_by_lane(limit)


def _label_legacy_entries(state: dict[str, Any], now: float, began: float) -> None:
    """PENDING entries of 0.2.0 into the lanes' index (legacy_lanes), with the time the run has left."""
    seconds = legacy_lanes.UNTIL_SECONDS - (clock.monotonic() - began)
    if seconds <= 0:
        return
    labelling = legacy_lanes.label_unlaned(state, now, seconds=seconds)
    metrics.add_metric(name="LegacyEntriesLabelled", unit=MetricUnit.Count, value=labelling.labelled)
    if labelling.labelled or not labelling.caught_up:
        logger.info(
            "Entries of 0.2.0 labelled",
            extra={"read": labelling.read, "labelled": labelling.labelled, "caughtUp": labelling.caught_up},
        )


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
