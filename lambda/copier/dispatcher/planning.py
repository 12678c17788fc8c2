"""A dispatcher run's plan: its copies' slots and permits of the concurrent-copy quota (plan_run), the slots
shared by the backlog's lanes and when each lane's next copy is due (shared_by_lanes, with admission.split_lanes
and due_after) and how late its oldest is (lateness), and the pacing item's fields the run writes (after_run), in
one conditional write. plan_run, shared_by_lanes, due_after, lateness and after_run are pure: benchmarks/scale/
plans with them too."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from copier import admission, clock, journal, pacing, table
from copier.dispatcher.schedule import HORIZON_SECONDS, PERIOD_SECONDS
from copier.dispatcher.settling import SETTLE_AFTER_SECONDS
from copier.errors import TableUnavailable
from copier.settings import Settings

# A copy's duration until one has been measured: it holds its permit past this run's plan.
UNMEASURED_COPY_SECONDS = float(HORIZON_SECONDS)
# A copy still STARTED after it should have landed is believed to land within this long (its event on the way).
OVERDUE_SECONDS = 10.0
# A measured duration is the longest of the copies that landed since the last count (a handful of them at
# least); fewer samples only raise it.
COPY_SECONDS_SAMPLES = 5
# Copies in flight are counted when the last count plus the starts since could reach this share of the quota.
COUNT_IN_FLIGHT_AT = 0.8
PLAN_ATTEMPTS = 3
ADDED_FIELDS = ("pushbacks", "handed")


@dataclass(frozen=True)
class Plan:
    slots: list[float]
    copy_seconds: float  # a copy's duration, as measured (or not yet)
    in_flight: int  # copies in flight or planned after this run, an upper bound
    counted: bool  # whether this run counted the copies in flight
    left: int = 0  # pending copies the plan had no slot or permit for
    split: admission.LaneSplit = field(default_factory=lambda: admission.LaneSplit(0, 0))  # live's first, bulk's after
    live_due: float | None = None  # when each lane's next copy is due (due_after), once a run has planned one
    bulk_due: float | None = None


# The pacing item's fields: when each lane's next copy is due. 0.2.0 kept one for its one backlog (`dueAt`): the
# first runs after the upgrade go on from it, so neither lane looks late for the backlog 0.2.0 served on time.
DUE_AT = {journal.Lane.LIVE: "liveDueAt", journal.Lane.BULK: "bulkDueAt"}
PREVIOUS_RELEASE_DUE_AT = "dueAt"
# The bulk lane's share a run owed it beyond the whole slots it gave (admission.split_lanes): the next run's.
BULK_CREDIT = "bulkCredit"


def planned(
    state: dict[str, Any],
    now: float,
    *,
    pace: float,
    quiet_runs: int,
    live: list[dict[str, Any]],
    bulk: list[dict[str, Any]],
    settings: Settings,
    planned_rate: float,
    settled: bool,
) -> Plan:
    """This run's plan for the oldest copies waiting in each lane, written on the pacing item. A copy that reserved
    a slot meanwhile (started by hand, or pushed back) moved the schedule on: plan again after it."""
    for _ in range(PLAN_ATTEMPTS):
        plan = _plan(state, now, pace, len(live) + len(bulk), settings)
        plan = shared_by_lanes(
            plan,
            state,
            live=[float(entry["updatedAt"]) for entry in live],
            bulk=[float(entry["updatedAt"]) for entry in bulk],
            rate=promised_rate(planned_rate, settings.concurrent_copy_quota, plan.copy_seconds),
            bulk_minimum_share=settings.bulk_minimum_share,
        )
        if _write_plan(state, plan, pace, quiet_runs, settled=settled):
            return plan
        state = table.get_item(pacing.PACING_KEY) or {}
    raise TableUnavailable("could not plan the run's slots: the schedule kept moving")


def _plan(state: dict[str, Any], now: float, pace: float, pending: int, settings: Settings) -> Plan:
    return plan_run(
        state,
        now,
        pace=pace,
        pending=pending,
        capacity=settings.concurrent_copy_quota,
        started_slots=journal.started_slots,
        landed_since=journal.landed_since,
    )


def shared_by_lanes(
    plan: Plan,
    state: Mapping[str, Any],
    *,
    live: Sequence[float],
    bulk: Sequence[float],
    rate: float,
    bulk_minimum_share: float,
) -> Plan:
    """The run's slots shared by the lanes (admission.split_lanes: the live lane's oldest copies first, the bulk
    lane's after them, at least its minimum share), `live` and `bulk` the admission times of the copies waiting in
    each, oldest first; and when each lane's next copy is due once these start (due_after): the live lane served
    at the rate the settings promise (promised_rate) less the bulk lane's minimum share while it has copies
    (LaneSplit.live_rate), the bulk lane at what the live lane left (LaneSplit.bulk_rate), so that each lane is
    late only when it gets less than it is promised, never for the demand on it."""
    slots = len(plan.slots)
    split = admission.split_lanes(
        slots,
        live=len(live),
        bulk=len(bulk),
        bulk_minimum_share=bulk_minimum_share,
        credit=float(state.get(BULK_CREDIT, 0.0)),
    )
    return replace(
        plan,
        split=split,
        live_due=due_after(_due(state, journal.Lane.LIVE), live[: split.live], split.live_rate(rate)),
        bulk_due=due_after(_due(state, journal.Lane.BULK), bulk[: split.bulk], split.bulk_rate(rate, slots)),
    )


def _due(state: Mapping[str, Any], lane: journal.Lane) -> float | None:
    return _float(state.get(DUE_AT[lane], state.get(PREVIOUS_RELEASE_DUE_AT)))


def plan_run(
    state: Mapping[str, Any],
    now: float,
    *,
    pace: float,
    pending: int,
    capacity: int,
    started_slots: Callable[[], list[float]],
    landed_since: Callable[[float], list[float]],
) -> Plan:
    """The slots of this run's copies: after the last one handed out, 1/pace apart, within the concurrent-copy
    quota. The copies in flight are counted (`started_slots`: the STARTED entries' slots) only when the last
    count plus the starts since could reach COUNT_IN_FLIGHT_AT of it, and a copy's duration measured from the
    copies that landed since the last count (`landed_since`). A pure function of the pacing item (`state`)
    and the journal's answers: benchmarks/scale/ plans with it too."""
    first = pacing.next_slot(now, pacing.last_slot(dict(state)), pace)  # its lead covers the execution's start too
    copy_seconds = float(state.get("copySeconds", UNMEASURED_COPY_SECONDS))
    bound = int(state.get("inFlight", 0))
    wanted = admission.plan_starts(now, first, pending, pace, HORIZON_SECONDS)
    if bound + len(wanted) <= COUNT_IN_FLIGHT_AT * capacity:
        return Plan(wanted, copy_seconds, bound + len(wanted), counted=False, left=pending - len(wanted))
    slots_in_flight = started_slots()
    landed = landed_since(float(state.get("countedAt", now - SETTLE_AFTER_SECONDS)))
    if len(landed) >= COPY_SECONDS_SAMPLES:
        copy_seconds = max(landed)
    elif landed:
        copy_seconds = max(*landed, copy_seconds)
    # A copy lands copy_seconds after its slot. One overdue has most likely landed and is being looked at (its
    # event on the way): its permit is believed free a few seconds on. One slower than measured is refused over
    # the quota at worst (a new slot later), and the copies that land slower raise the measure for the next run.
    ends = (slot + copy_seconds for slot in slots_in_flight)
    busy = tuple(end if end >= now else now + OVERDUE_SECONDS for end in ends)
    permits = admission.Permits(capacity, busy, copy_seconds)
    slots = admission.plan_starts(now, first, pending, pace, HORIZON_SECONDS, permits=permits)
    return Plan(slots, copy_seconds, len(busy) + len(slots), counted=True, left=pending - len(slots))


def promised_rate(rate: float, capacity: int, copy_seconds: float) -> float:
    """The copies a second the settings promise: the budgets' planned rate (copyRatePerSecond, or what a read's budget
    allows when lower), or the concurrent-copy quota over a copy's duration (as measured) when that is lower. The
    adaptive pace is not in it: a quota shared with another client for hours makes the backlog late, and its alarm
    says so."""
    return min(rate, capacity / copy_seconds)


def due_after(due: float | None, admitted: Iterable[float], rate: float) -> float | None:
    """When the backlog's next copy is due, after the run started copies admitted at these times (oldest
    first): the backlog served at `rate` (promised_rate) starts each copy once it is admitted and 1/rate after
    the one before it was due. `due`: the pacing item's `dueAt`, from the run before (None: no copy yet)."""
    for at in admitted:
        due = max(at, at if due is None else due) + 1.0 / rate
    return due


def lateness(due: float | None, head: float | None, now: float) -> float:
    """How long the backlog's oldest copy (admitted at `head`; None: no backlog) has waited beyond its due
    time: 0 while the backlog goes at the promised rate (a burst's last copy waits hours at 0.24/s and is not
    late), growing by a second a second while nothing starts (the dispatcher stopped, starts failing, permits
    held by copies that ended) or by the share of the rate another client takes."""
    if head is None:
        return 0.0
    return max(0.0, now - max(head, head if due is None else due))


def after_run(
    state: Mapping[str, Any], plan: Plan, *, pace: float, quiet_runs: int, now: float, settled: bool = False
) -> dict[str, Any]:
    """The pacing item's fields a run sets: its block of slots (the last one), the adapted pace, the copies in
    flight as far as it knows, when each lane's next copy is due and the bulk lane's share still owed, when it last
    settled ended executions, and the counts it adapted the pace from taken off (pushbacks and slots handed out
    meanwhile stay for the next run)."""
    fields: dict[str, Any] = {
        "pace": pace,
        "quietRuns": quiet_runs,
        "copySeconds": plan.copy_seconds,
        "inFlight": plan.in_flight,
        "pushbacks": -int(state.get("pushbacks", 0)),  # added: an ADD, not a SET
        "handed": len(plan.slots) - int(state.get("handed", 0)),  # added too
    }
    if plan.counted:
        fields["countedAt"] = now
    if settled:
        fields["settledAt"] = now
    if plan.slots:
        fields["nextSlot"] = plan.slots[-1]
    for lane, due in ((journal.Lane.LIVE, plan.live_due), (journal.Lane.BULK, plan.bulk_due)):
        if due is not None:
            fields[DUE_AT[lane]] = due
    fields[BULK_CREDIT] = plan.split.credit
    # Copies left for want of a slot or a permit are the next run's: no run at once before it (is_idle).
    fields["busyUntil"] = now + PERIOD_SECONDS if plan.left else now
    fields["runAt"] = now
    return fields


def _write_plan(state: dict[str, Any], plan: Plan, pace: float, quiet_runs: int, *, settled: bool) -> bool:
    """after_run's fields in one conditional write on the pacing item, on condition no slot was handed out since
    the lease's read; False when one was (a copy that reserved one meanwhile makes the run plan again)."""
    fields = after_run(state, plan, pace=pace, quiet_runs=quiet_runs, now=clock.now(), settled=settled)
    added = {name: fields.pop(name) for name in ADDED_FIELDS}
    values: dict[str, Any] = {f":{name}": _number(value) for name, value in {**fields, **added}.items()}
    assignments = [f"{name} = :{name}" for name in fields]
    condition: dict[str, Any] = {}
    if plan.slots:
        assignments.append("expiration = :expiration")
        values[":expiration"] = int(plan.slots[-1]) + 86_400
        previous = pacing.last_slot(state)
        if previous is None:
            condition = {"ConditionExpression": "attribute_not_exists(nextSlot)"}
        else:
            condition = {"ConditionExpression": "nextSlot = :previous"}
            values[":previous"] = _number(previous)
    written = table.call_if(
        "update_item",
        Key={"id": {"S": pacing.PACING_KEY}},
        UpdateExpression=f"SET {', '.join(assignments)} ADD " + ", ".join(f"{name} :{name}" for name in added),
        ExpressionAttributeValues=table.to_dynamodb(values),
        **condition,
    )
    return written is not None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _number(value: float | int) -> Decimal | int:
    return value if isinstance(value, int) else Decimal(repr(value))
