"""The admission decisions: the slot each execution reserves (pacing) and the dispatcher's plan, as pure
functions, then as the dispatcher runs them (one schedule across its runs, counted by what each run starts)."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import boto3
import pytest
from function_stubs import DATASTORE, FUNCTION_ENV, Function
from hypothesis import given
from hypothesis import strategies as st

from copier import admission, pacing
from copier.dispatcher import planning, schedule
from offline.clock import VirtualClock

RATE = 0.24
INTERVAL = 1 / RATE


# --- pacing: the slot each execution reserves on the shared item --------------------------
def test_a_slot_follows_the_last_one_by_one_interval() -> None:
    assert pacing.next_slot(1_000.0, 1_000.0, RATE) == pytest.approx(1_000.0 + INTERVAL)


def test_a_slot_in_the_past_is_not_reused_and_none_is_closer_than_the_lead() -> None:
    lead = pacing.HOLD_LEAD_SECONDS
    assert pacing.next_slot(1_000.0, 900.0, RATE) == 1_000.0 + lead
    assert pacing.next_slot(1_000.0, None, RATE) == 1_000.0 + lead
    assert pacing.next_slot(1_000.0, 1_000.0 - INTERVAL + 0.5, RATE) == 1_000.0 + lead


def test_the_wait_ends_up_to_the_lead_before_the_slot_in_whole_seconds() -> None:
    slots = (1_000.0, 1_002.9, 1_004.0, 1_004.01, 1_012.5)
    assert [pacing.wait_seconds(slot, 1_000.0) for slot in slots] == [0, 0, 2, 2, 10]
    # Never past the slot, never more than the lead (plus under a second) before it.
    for slot in slots:
        waited = pacing.wait_seconds(slot, 1_000.0)
        assert 1_000.0 + waited <= slot
        assert slot - (1_000.0 + waited) < pacing.HOLD_LEAD_SECONDS + 1 or waited == 0


def test_the_call_is_held_until_the_slot_and_not_after_it() -> None:
    assert pacing.hold_seconds(1_004.5, 1_002.0) == pytest.approx(2.5)
    assert pacing.hold_seconds(1_000.0, 1_003.0) == 0.0  # a retry after a conflict: its slot has passed
    assert pacing.hold_seconds(None, 1_000.0) == 0.0
    assert pacing.hold_seconds(2_000.0, 1_000.0) == pacing.MAX_HOLD_SECONDS  # bounded inside the function


def test_four_reservations_at_one_instant_wait_then_hold_onto_slots_one_interval_apart() -> None:
    previous: float | None = None
    calls = []
    for _ in range(4):
        previous = pacing.next_slot(1_000.0, previous, RATE)
        read = 1_000.0 + pacing.wait_seconds(previous, 1_000.0) + 0.3  # StartCopy's reads took 0.3 s
        calls.append(read + pacing.hold_seconds(previous, read))
    assert calls == pytest.approx([1_000.0 + pacing.HOLD_LEAD_SECONDS + index * INTERVAL for index in range(4)])


# --- admission: one dispatcher's plan --------------------------------------------------------
def test_a_dispatch_starts_one_period_of_copies_spaced_by_the_rate() -> None:
    starts = admission.plan_starts(now=0.0, next_free_slot=0.0, pending=1_000, rate_per_second=RATE, period_seconds=60)

    assert len(starts) == 15  # 0, 4.17, ... 58.3: the 16th would fall in the next dispatch's minute
    assert starts[0] == 0.0
    assert all(later - earlier == pytest.approx(INTERVAL) for earlier, later in itertools.pairwise(starts))


def test_a_small_backlog_is_started_whole() -> None:
    assert admission.plan_starts(0.0, 0.0, pending=3, rate_per_second=RATE, period_seconds=60) == pytest.approx(
        [0.0, INTERVAL, 2 * INTERVAL]
    )


def test_nothing_pending_starts_nothing() -> None:
    assert admission.plan_starts(0.0, 0.0, pending=0, rate_per_second=RATE, period_seconds=60) == []


def test_a_late_dispatch_starts_now_rather_than_in_the_past() -> None:
    starts = admission.plan_starts(500.0, 100.0, pending=2, rate_per_second=RATE, period_seconds=60)
    assert starts[0] == 500.0


def test_a_schedule_booked_past_this_period_starts_nothing() -> None:
    assert admission.plan_starts(0.0, 61.0, pending=5, rate_per_second=RATE, period_seconds=60) == []


@pytest.mark.parametrize(("rate", "period"), [(0.0, 60.0), (-1.0, 60.0), (RATE, 0.0)])
def test_a_rate_or_period_that_is_not_positive_is_refused(rate: float, period: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        admission.plan_starts(0.0, 0.0, pending=1, rate_per_second=rate, period_seconds=period)


@given(
    now=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    ahead=st.floats(min_value=-1e4, max_value=120, allow_nan=False),
    pending=st.integers(min_value=0, max_value=10_000),
    rate=st.floats(min_value=0.01, max_value=1.0),
    period=st.floats(min_value=1.0, max_value=600.0),
)
def test_every_plan_is_inside_its_period_spaced_by_the_rate_and_as_full_as_allowed(
    now: float, ahead: float, pending: int, rate: float, period: float
) -> None:
    next_free = now + ahead
    starts = admission.plan_starts(now, next_free, pending, rate, period)

    first = max(now, next_free)
    assert len(starts) <= pending
    assert all(first <= start < now + period for start in starts)
    assert all(later - earlier == pytest.approx(1 / rate) for earlier, later in itertools.pairwise(starts))
    if len(starts) < pending:  # stopped by the period's end: one more would not fit
        assert first + len(starts) / rate >= now + period - 1e-9 * max(1.0, now)


# --- permits: the data store's concurrent-copy quota --------------------------------------------
@given(
    capacity=st.integers(min_value=1, max_value=50),
    busy=st.lists(st.floats(min_value=0, max_value=200, allow_nan=False), max_size=80),
    copy_seconds=st.floats(min_value=1, max_value=120),
    rate=st.floats(min_value=0.05, max_value=50.0),
    pending=st.integers(min_value=0, max_value=500),
)
def test_no_plan_puts_more_copies_in_flight_than_the_quota(
    capacity: int, busy: list[float], copy_seconds: float, rate: float, pending: int
) -> None:
    permits = admission.Permits(capacity, tuple(busy), copy_seconds)
    starts = admission.plan_starts(0.0, 0.0, pending, rate, 67.0, permits=permits)
    spans = [(-1.0, end) for end in busy] + [(start, start + copy_seconds) for start in starts]
    for at in [0.0, *starts]:  # in flight at each call: never more than the quota, counting the new one
        assert sum(1 for begin, end in spans if begin <= at < end) <= max(capacity, len([e for e in busy if e > at]))
    assert all(later - earlier >= 1 / rate - 1e-9 for earlier, later in itertools.pairwise(starts))
    assert all(0.0 <= start < 67.0 for start in starts) and len(starts) <= pending


def test_a_full_quota_waits_for_the_first_copy_to_land() -> None:
    permits = admission.Permits(2, (30.0, 50.0), 45.0)
    assert admission.plan_starts(0.0, 0.0, 3, 10.0, 67.0, permits=permits) == [30.0, 50.0]  # 75.0: next run's


def test_free_permits_start_at_the_pace() -> None:
    permits = admission.Permits(100, (), 45.0)
    assert admission.plan_starts(0.0, 2.0, 3, 4.0, 67.0, permits=permits) == pytest.approx([2.0, 2.25, 2.5])


# --- the lanes: a run's slots shared by new imports (live) and bulk work ------------------------------
def shares(split: admission.LaneSplit) -> tuple[int, int, int]:
    return split.live, split.bulk, split.reserved


def test_the_live_lane_takes_the_first_slots_and_the_bulk_lane_what_is_left() -> None:
    assert shares(admission.split_lanes(16, live=3, bulk=1_000, bulk_minimum_share=0.1)) == (3, 13, 1)
    assert shares(admission.split_lanes(16, live=0, bulk=1_000, bulk_minimum_share=0.1)) == (0, 16, 1)
    assert shares(admission.split_lanes(16, live=3, bulk=0, bulk_minimum_share=0.1)) == (3, 0, 0)
    assert shares(admission.split_lanes(0, live=3, bulk=5, bulk_minimum_share=0.1)) == (0, 0, 0)


def test_a_flood_of_live_copies_leaves_the_bulk_lane_its_minimum_share_in_whole_slots_the_rest_carried() -> None:
    flooded = admission.split_lanes(16, live=500, bulk=1_000, bulk_minimum_share=0.1)
    assert shares(flooded) == (15, 1, 1) and flooded.credit == pytest.approx(0.6)  # 1.6 owed: 1 now, 0.6 later
    carried = admission.split_lanes(16, live=500, bulk=1_000, bulk_minimum_share=0.1, credit=flooded.credit)
    assert shares(carried) == (14, 2, 2) and carried.credit == pytest.approx(0.2)
    assert shares(admission.split_lanes(20, live=500, bulk=1_000, bulk_minimum_share=0.1)) == (18, 2, 2)
    assert shares(admission.split_lanes(148, live=500, bulk=1, bulk_minimum_share=0.1)) == (147, 1, 1)
    # A bulk lane given more than its share (the live lane had nothing) banks nothing for later.
    assert admission.split_lanes(16, live=0, bulk=1_000, bulk_minimum_share=0.1).credit == 0.0


def test_runs_of_one_slot_give_the_bulk_lane_its_share_not_every_slot() -> None:
    """Copies that take long against the concurrent-copy quota leave a run one slot: rounded up, the bulk lane's
    minimum share would take it every time and starve new imports; carried, it takes one run's in ten."""
    credit, given = 0.0, []
    for _ in range(100):
        split = admission.split_lanes(1, live=5, bulk=5, bulk_minimum_share=0.1, credit=credit)
        credit = split.credit
        given.append(split.bulk)
    assert sum(given) == 10 and given[:10] == [0] * 9 + [1]


@given(
    runs=st.lists(
        st.tuples(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=500)),
        min_size=1,
        max_size=40,
    ),
    share=st.floats(min_value=0.01, max_value=0.5),
)
def test_every_split_uses_the_slots_it_can_and_keeps_each_lanes_promise(
    runs: list[tuple[int, int]], share: float
) -> None:
    """Run after run (`runs`: each run's slots and the live copies waiting; the bulk lane always has copies): no slot
    idle while a copy waits, and the bulk lane given at least its share of the slots while the live lane is full, to
    within one slot however the slots come, never short of it by more."""
    credit, owed, given = 0.0, 0.0, 0
    for slots, live in runs:
        split = admission.split_lanes(slots, live=live, bulk=10_000, bulk_minimum_share=share, credit=credit)
        assert 0 <= split.live <= live and split.live + split.bulk == slots  # no slot idle while a copy waits
        assert 0.0 <= split.credit <= 1.0
        promised = split.bulk_rate(1.0, slots)  # of a rate of 1: the share of the rate the bulk lane is promised
        assert promised == (pytest.approx(1.0 - split.live / slots) if slots else 1.0)
        assert split.live_rate(1.0) == pytest.approx(1.0 - min(share, 10_000 / slots) if slots else 1.0)
        credit = split.credit
        if live > split.live:  # the live lane wanted more: the bulk lane had its share and no more
            owed += share * slots
            given += split.bulk
            assert given >= math.floor(owed + 1e-9) - 1 and given <= owed + 1 + 1e-9
        else:
            owed, given = 0.0, 0  # live had all it wanted: bulk took the rest, nothing owed either way
            credit = min(credit, 1.0)


# --- the adaptive pace (AIMD): a quota shared with other clients -------------------------------
def test_pushbacks_slow_the_pace_to_the_share_that_went_through_at_most_halving_it() -> None:
    assert pacing.slowed(10.0, 10.0, pushbacks=100, calls=600) == pytest.approx(10.0 * (500 / 600) * 0.98)
    assert pacing.slowed(10.0, 10.0, pushbacks=550, calls=600) == 5.0  # at most halved
    assert pacing.slowed(0.6, 10.0, pushbacks=9, calls=10) == 0.5  # never under the floor (5% of the rate)


def test_quiet_runs_speed_the_pace_up_by_a_doubling_step_up_to_the_rate() -> None:
    steps = [pacing.recovered(5.0, 10.0, quiet_runs=quiet) - 5.0 for quiet in range(7)]
    assert steps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 1.6, 1.6])
    assert pacing.recovered(9.9, 10.0, quiet_runs=4) == 10.0


def test_a_run_adapts_from_the_counts_on_the_pacing_item() -> None:
    assert pacing.adapted({}, 0.24) == (0.24, 1)  # nothing known: the configured rate
    assert pacing.adapted({"pace": 0.2, "quietRuns": 2}, 0.24) == (pytest.approx(0.2096), 3)
    slowed, quiet = pacing.adapted({"pace": 0.24, "pushbacks": 3, "handed": 12, "quietRuns": 5}, 0.24)
    assert slowed == pytest.approx(0.24 * 0.75 * 0.98) and quiet == 0
    assert pacing.adapted({"pace": 50.0}, 1.0) == (1.0, 1)  # a lowered copyRatePerSecond takes effect at once


# --- how late the backlog is (alarms LiveBacklogLate, BulkBacklogLate): what its size does not explain ------
def test_a_backlog_served_at_the_promised_rate_is_never_late_however_large() -> None:
    """A 1M backfill admitted at once (50 a second for 5.6 h) and started at 0.24/s, a minute's copies a run:
    its oldest copy waits up to 48 days and is never late."""
    admitted = [i / 50 for i in range(1_000_000)]
    due, now, worst, total = None, 0.0, 0.0, 0
    while total < len(admitted) and now < 60 * 86_400:
        # The run's slots: 1/rate apart, on from the last run's, up to the horizon.
        slots = int((now + schedule.HORIZON_SECONDS) * RATE) - total
        due = planning.due_after(due, admitted[total : total + slots], RATE)
        total = min(total + slots, len(admitted))
        head = admitted[total] if total < len(admitted) and admitted[total] <= now else None
        worst = max(worst, planning.lateness(due, head, now))
        now += schedule.PERIOD_SECONDS
    assert total == len(admitted) and now > 48 * 86_400  # drained, after 48 days
    assert worst <= schedule.PERIOD_SECONDS


def test_a_backlog_nothing_starts_is_late_by_the_time_nothing_started() -> None:
    due = planning.due_after(None, [100.0, 100.0], RATE)
    assert due == pytest.approx(100.0 + 2 * INTERVAL)
    assert planning.lateness(due, 100.0, now=100.0 + 2 * INTERVAL) == 0.0  # the third copy: due now
    assert planning.lateness(due, 100.0, now=3_700.0 + 2 * INTERVAL) == pytest.approx(3_600.0)  # an hour stopped
    assert planning.lateness(due, None, now=10_000.0) == 0.0  # no backlog: nothing late
    assert planning.lateness(None, 500.0, now=560.0) == 60.0  # the first copy ever: due when admitted


def test_a_copy_admitted_after_the_backlog_drained_is_due_when_admitted() -> None:
    due = planning.due_after(None, [0.0], RATE)
    assert planning.due_after(due, [1_000.0], RATE) == pytest.approx(1_000.0 + INTERVAL)
    assert planning.lateness(due, 1_000.0, now=1_030.0) == 30.0


def lanes_run(
    state: dict[str, float], now: float, *, live: list[float], bulk: list[float], share: float = 0.1
) -> planning.Plan:
    """One run's plan shared by the lanes, its slots a minute of the rate from the last run's (as plan_run gives
    them in a backlog), and the pacing item updated as after_run leaves it."""
    first = max(now + pacing.HOLD_LEAD_SECONDS, state.get("nextSlot", -1e9) + INTERVAL)
    slots = admission.plan_starts(now, first, len(live) + len(bulk), RATE, schedule.HORIZON_SECONDS)
    plan = planning.shared_by_lanes(
        planning.Plan(slots, 45.0, 0, counted=False), state, live=live, bulk=bulk, rate=RATE, bulk_minimum_share=share
    )
    state.update({k: v for k, v in planning.after_run(state, plan, pace=RATE, quiet_runs=0, now=now).items()})
    return plan


def test_a_flood_of_imports_over_a_backfill_makes_both_lanes_old_and_neither_late() -> None:
    """A day of imports beyond the quota (the live lane full: each run leaves the bulk lane its minimum share) over a
    1M backfill admitted at once: each lane gets what it is promised (live: the rate but the bulk lane's minimum
    share; bulk: what live leaves it), so neither is late, however long the imports and the backfill wait: the
    demand on a lane is not a fault (with no backfill the flood would not be late either)."""
    state: dict[str, float] = {}
    backfill = [0.0] * 1_000_000
    imports = [n / 0.3 for n in range(int(86_400 * 0.3))]  # 0.3 a second: more than the 0.24 the quota gives
    started = {"live": 0, "bulk": 0}
    worst = {"live": 0.0, "bulk": 0.0}
    for now in range(60, 86_400, schedule.PERIOD_SECONDS):
        live = [at for at in imports[started["live"] :][:17] if at <= now]
        plan = lanes_run(state, now, live=live, bulk=backfill[started["bulk"] :][:17])
        started["live"] += plan.split.live
        started["bulk"] += plan.split.bulk
        heads = {"live": imports[started["live"]], "bulk": backfill[started["bulk"]]}
        for lane, due in (("live", plan.live_due), ("bulk", plan.bulk_due)):
            head = heads[lane] if heads[lane] <= now else None
            worst[lane] = max(worst[lane], planning.lateness(due, head, now))
    # Its minimum share, in whole slots, the fractions carried from run to run: a tenth of the day's copies.
    assert started["bulk"] / (started["live"] + started["bulk"]) == pytest.approx(0.1, abs=0.002)
    assert worst["bulk"] <= schedule.PERIOD_SECONDS and worst["live"] <= schedule.PERIOD_SECONDS
    assert now - imports[started["live"]] > 6 * 3_600  # old: the flood's imports wait hours


def test_the_first_runs_after_the_upgrade_go_on_from_the_schedule_0_2_0_left() -> None:
    """0.2.0 kept one due time for its one backlog (`dueAt`, on time): a backfill it admitted days ago and served
    as promised is not late for the new code's first run, whose lanes start from it."""
    now = 5 * 86_400.0
    state = {"dueAt": now - 5.0, "nextSlot": now - 1.0}
    plan = lanes_run(state, now, live=[], bulk=[0.0] * 100)
    assert planning.lateness(plan.bulk_due, 0.0, now) == 0.0
    assert state["bulkDueAt"] == pytest.approx(now - 5.0 + 16 * INTERVAL)  # on from it, 16 copies later


def test_the_promised_rate_is_the_setting_or_the_concurrent_copy_quota_over_a_copys_duration() -> None:
    assert planning.promised_rate(0.24, 100, 45.0) == 0.24
    assert planning.promised_rate(9.9, 100, 45.0) == pytest.approx(100 / 45)


# --- the dispatcher's runs: one schedule, kept from run to run --------------------------------------
# A run starts the backlog's oldest entries on slots 1/rate apart, from the later of now + the hold lead and
# one interval after the last slot the previous run planned, up to the next run's first (now + the horizon).
STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:copy"


@dataclass
class Dispatcher:
    function: Function
    clock: VirtualClock
    start: float
    admitted: int = 0

    def admit(self, count: int, lane: str = "live") -> list[str]:
        """`count` more image set versions into the backlog's lane (PENDING), as the admission queue (live) or a
        backfill (bulk) leaves them; their image set ids."""
        models, journal = self.function.modules.models, self.function.modules.journal
        admitted = [f"{number:032x}" for number in range(self.admitted, self.admitted + count)]
        for image_set_id in admitted:
            request = models.CopyRequest(
                datastore_id=DATASTORE, source_image_set_id=image_set_id, source_version_id="1"
            )
            journal.admit(image_set_id, "1", models.CopyPlan(request=request), lane=journal.Lane(lane))
        self.admitted += count
        return admitted

    def run_at(self, seconds: float) -> int:
        """One scheduled run, `seconds` after the first; how many executions it started."""
        return len(self.started_at(seconds))

    def started_at(self, seconds: float) -> dict[str, float]:
        """One scheduled run, `seconds` after the first: the image sets it started, and the slot each was given
        (its execution's input), seconds after the first run."""
        self.clock.advance(self.start + seconds - self.clock.now())
        names = self.function.invoke({"action": "dispatch"})["started"]
        sfn = boto3.client("stepfunctions")
        prefix = STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:")
        inputs = [json.loads(sfn.describe_execution(executionArn=f"{prefix}:{n}")["input"]) for n in names]
        return {i["admitted"]["sourceImageSetId"]: i["slot"]["at"] - self.start for i in inputs}


@pytest.fixture
def function_env() -> dict[str, str]:
    return {**FUNCTION_ENV, "STATE_MACHINE_ARN": STATE_MACHINE_ARN}


@pytest.fixture
def dispatcher_runs(function: Function) -> Iterator[Dispatcher]:
    boto3.client("stepfunctions").create_state_machine(
        name="copy",
        definition=json.dumps({"StartAt": "Copy", "States": {"Copy": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/copy",
    )
    clock = VirtualClock()
    with mock.patch.object(function.modules.clock, "now", clock.now):
        yield Dispatcher(function, clock, clock.now())


def test_each_run_plans_on_from_the_last_slot_the_run_before_planned(dispatcher_runs: Dispatcher) -> None:
    dispatcher_runs.admit(40)
    # 2 s to 64.5 s: 16 slots; then from 64.5 + 4.17 s (not from 52 s: 16 more) to 117 s: 12.
    assert [dispatcher_runs.run_at(0), dispatcher_runs.run_at(50)] == [16, 12]


def test_the_next_run_plans_on_from_the_last_copy_started_not_the_last_slot_planned(
    dispatcher_runs: Dispatcher,
) -> None:
    dispatcher_runs.admit(3)
    first = dispatcher_runs.run_at(0)  # 3 of 16 slots: the last one used is at 10.3 s
    dispatcher_runs.admit(20)
    # From 10.3 + 4.17 s to 73 s: 15 (from the plan's last slot, 64.5 s, it would be 2).
    assert [first, dispatcher_runs.run_at(6)] == [3, 15]


def test_a_run_that_starts_nothing_keeps_the_schedule(dispatcher_runs: Dispatcher) -> None:
    dispatcher_runs.admit(3)
    runs = [dispatcher_runs.run_at(0), dispatcher_runs.run_at(5)]  # the second finds nothing to start
    dispatcher_runs.admit(20)
    runs.append(dispatcher_runs.run_at(6))  # still from 10.3 + 4.17 s: 15 (a forgotten schedule: 16, from 8 s)
    assert runs == [3, 0, 15]


def test_a_live_copy_admitted_just_after_a_run_takes_the_next_runs_first_slot_before_any_bulk_copy(
    dispatcher_runs: Dispatcher,
) -> None:
    """A backfill of 100 waits in the bulk lane; a run hands 16 of them a minute of slots, up to its horizon (the next
    run's first slot, 67 s). An import admitted a second later waits for the next run and the slots the first one
    planned ahead of it, no more: its slot is the first after them, ahead of every bulk copy that run starts."""
    backfilled = dispatcher_runs.admit(100, lane="bulk")
    first = dispatcher_runs.started_at(0)
    dispatcher_runs.clock.advance(1)
    (imported,) = dispatcher_runs.admit(1)
    second = dispatcher_runs.started_at(60)
    assert set(first) == set(backfilled[:16]) and max(first.values()) < schedule.HORIZON_SECONDS
    assert min(second, key=second.__getitem__) == imported
    assert second[imported] == pytest.approx(max(first.values()) + INTERVAL)  # 68.7 s: 67.7 s after its admission
    assert second[imported] < 60 + schedule.HORIZON_SECONDS - INTERVAL * 13  # then the bulk copies that run starts
    assert set(second) - {imported} == set(backfilled[16:29]) and len(second) == 14


def test_while_the_lanes_index_is_being_built_a_run_reads_the_backlog_by_status_live_first(
    dispatcher_runs: Dispatcher,
) -> None:
    """The upgrade adds the lanes' index to a table that holds entries: CloudFormation starts its backfill and goes
    on, and DynamoDB refuses to read it until it is built (ValidationException). Runs meanwhile read the oldest
    PENDING entries from journalByStatus, each in its lane: new imports still first, nothing waits for the index."""
    function = dispatcher_runs.function
    table, errors = function.modules.table, function.modules.errors
    backfilled = dispatcher_runs.admit(20, lane="bulk")
    dispatcher_runs.clock.advance(1)
    (imported,) = dispatcher_runs.admit(1)
    read = table.call
    refused: list[str] = []

    def being_built(operation: str, **params: object) -> dict[str, object]:
        if params.get("IndexName") == function.modules.journal.BACKLOG_INDEX:
            refused.append(operation)
            raise errors.TableUnavailable("Cannot read from backfilling global secondary index", "ValidationException")
        return read(operation, **params)  # type: ignore[no-any-return]

    with mock.patch.object(table, "call", being_built):
        first = dispatcher_runs.started_at(0)
    assert refused  # the index was asked for, and refused
    assert min(first, key=first.__getitem__) == imported and set(first) - {imported} == set(backfilled[:15])
