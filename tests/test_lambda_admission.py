"""The admission decisions as pure functions: today's slot reservation (pacing) and the dispatcher's plan."""

from __future__ import annotations

import pytest

from copier import pacing

RATE = 0.24
INTERVAL = 1 / RATE


# --- pacing: the slot each execution reserves on the shared item --------------------------
def test_the_first_slot_is_now() -> None:
    assert pacing.next_slot(1_000.0, None, RATE) == 1_000.0


def test_a_slot_follows_the_last_one_by_one_interval() -> None:
    assert pacing.next_slot(1_000.0, 1_000.0, RATE) == pytest.approx(1_000.0 + INTERVAL)


def test_a_slot_in_the_past_is_not_reused() -> None:
    assert pacing.next_slot(1_000.0, 900.0, RATE) == 1_000.0


def test_waits_are_whole_seconds_rounded_up() -> None:
    assert [pacing.seconds_until(slot, 1_000.0) for slot in (1_000.0, 1_000.2, 1_004.0, 1_004.01)] == [0, 1, 4, 5]


def test_the_reservation_loop_hands_out_the_same_waits_as_before() -> None:
    """The handler's figures (test_lambda_steps): four reservations at one instant wait 0, 5, 9, 13 s."""
    previous: float | None = None
    waits = []
    for _ in range(4):
        previous = pacing.next_slot(1_000.0, previous, RATE)
        waits.append(pacing.seconds_until(previous, 1_000.0))
    assert waits == [0, 5, 9, 13]
