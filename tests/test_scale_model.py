"""The scale model's own invariants at a small N, for both admission designs (benchmarks/scale.py)."""

from __future__ import annotations

import pytest

from benchmarks import scale

LIMITS = scale.Limits()
N, WINDOW = 1_000, 60.0


@pytest.fixture(scope="module", params=[design.name for design in scale.DESIGNS])
def outcome(request: pytest.FixtureRequest) -> scale.Outcome:
    design = next(d for d in scale.DESIGNS if d.name == request.param)
    return scale.simulate(design, N, WINDOW, limits=LIMITS, seed=7)


def test_every_admitted_copy_ends_copied_failed_or_lost(outcome: scale.Outcome) -> None:
    assert outcome.copies_pending == 0
    assert outcome.copied + outcome.copies_failed + outcome.copies_lost == N
    # A copy counted as failed has a failed or timed-out execution to show for it.
    assert outcome.copies_failed <= outcome.executions_failed


def test_no_copy_image_set_is_accepted_beyond_the_bucket(outcome: scale.Outcome) -> None:
    """Burst 1 at 0.25/s: two accepted calls are never closer than 4 s."""
    assert outcome.min_accept_gap >= 1 / LIMITS.copy_quota - 1e-9


@pytest.fixture(scope="module")
def dispatched() -> scale.Outcome:
    return scale.simulate(scale.Dispatcher, N, WINDOW, limits=LIMITS, seed=7)


def test_the_dispatcher_bounds_every_wait_and_loses_nothing(dispatched: scale.Outcome) -> None:
    # A run starts only what fits before the next: no execution waits for a slot past the next run's minute.
    assert dispatched.longest_wait < 2 * LIMITS.dispatch_period
    assert dispatched.copies_lost == dispatched.duplicates == dispatched.lambda_throttles == 0


@pytest.mark.xfail(
    strict=True,
    reason="drain at 1k: calls 1/rate apart take 1.041 x N/quota, slots set by the hold lead (a run whose schedule"
    " is under read + 2 s ahead) leave it idle ~0.007, and the first call waits for the first dispatch run"
    " (up to 60 s, ~0.006 at seed 7): 1.054 > 1.05. Nothing is throttled, failed, lost or duplicated",
)
def test_the_dispatcher_meets_the_targets(dispatched: scale.Outcome) -> None:
    assert dispatched.unmet(LIMITS) == []
    assert dispatched.copied == N
