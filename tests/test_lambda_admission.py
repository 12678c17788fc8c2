"""The admission decisions: the slot each execution reserves (pacing) and the dispatcher's plan, as pure
functions, then as the dispatcher runs them (one schedule across its runs, counted by what each run starts)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import boto3
import pytest
from function_stubs import DATASTORE, FUNCTION_ENV, Function
from hypothesis import given
from hypothesis import strategies as st

from copier import admission, pacing
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

    def admit(self, count: int) -> None:
        """`count` more image set versions into the backlog (PENDING), as the admission queue leaves them."""
        models = self.function.modules.models
        for number in range(self.admitted, self.admitted + count):
            image_set_id = f"{number:032x}"
            request = models.CopyRequest(
                datastore_id=DATASTORE, source_image_set_id=image_set_id, source_version_id="1"
            )
            self.function.modules.journal.admit(image_set_id, "1", models.CopyPlan(request=request))
        self.admitted += count

    def run_at(self, seconds: float) -> int:
        """One scheduled run, `seconds` after the first; how many executions it started."""
        self.clock.advance(self.start + seconds - self.clock.now())
        return len(self.function.invoke({"action": "dispatch"})["started"])


@pytest.fixture
def function_env() -> dict[str, str]:
    return {**FUNCTION_ENV, "STATE_MACHINE_ARN": STATE_MACHINE_ARN}


@pytest.fixture
def dispatcher(function: Function) -> Iterator[Dispatcher]:
    boto3.client("stepfunctions").create_state_machine(
        name="copy",
        definition=json.dumps({"StartAt": "Copy", "States": {"Copy": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/copy",
    )
    clock = VirtualClock()
    with mock.patch.object(function.modules.clock, "now", clock.now):
        yield Dispatcher(function, clock, clock.now())


def test_each_run_plans_on_from_the_last_slot_the_run_before_planned(dispatcher: Dispatcher) -> None:
    dispatcher.admit(40)
    # 2 s to 64.5 s: 16 slots; then from 64.5 + 4.17 s (not from 52 s: 16 more) to 117 s: 12.
    assert [dispatcher.run_at(0), dispatcher.run_at(50)] == [16, 12]


def test_the_next_run_plans_on_from_the_last_copy_started_not_the_last_slot_planned(dispatcher: Dispatcher) -> None:
    dispatcher.admit(3)
    first = dispatcher.run_at(0)  # 3 of 16 slots: the last one used is at 10.3 s
    dispatcher.admit(20)
    # From 10.3 + 4.17 s to 73 s: 15 (from the plan's last slot, 64.5 s, it would be 2).
    assert [first, dispatcher.run_at(6)] == [3, 15]


def test_a_run_that_starts_nothing_keeps_the_schedule(dispatcher: Dispatcher) -> None:
    dispatcher.admit(3)
    runs = [dispatcher.run_at(0), dispatcher.run_at(5)]  # the second finds nothing to start
    dispatcher.admit(20)
    runs.append(dispatcher.run_at(6))  # still from 10.3 + 4.17 s: 15 (a forgotten schedule: 16, from 8 s)
    assert runs == [3, 0, 15]
