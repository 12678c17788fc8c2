"""The scale model's own invariants at a small N, for both admission designs (benchmarks/scale.py)."""

from __future__ import annotations

import inspect

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
    # A run starts only what fits before the next run plus the lead and the start margin: no execution
    # waits for its slot much past that horizon.
    assert dispatched.longest_wait < LIMITS.dispatch_horizon
    assert dispatched.copies_lost == dispatched.duplicates == dispatched.lambda_throttles == 0


def test_the_first_copy_does_not_wait_for_the_schedule(dispatched: scale.Outcome) -> None:
    """The admission consumer finds nothing planned and dispatches at once: seconds, not up to a minute."""
    assert dispatched.first_call < 10


def test_the_admission_figures_are_the_stacks() -> None:
    """Limits copies the SQS event source's figures (importing the construct loads the CDK)."""
    import_trigger = pytest.importorskip("infra.import_trigger")
    assert LIMITS.admission_concurrency == import_trigger.ADMISSION_CONCURRENCY
    assert LIMITS.admission_receives == import_trigger.MAX_RECEIVES
    source = inspect.getsource(import_trigger)
    assert f"batch_size={LIMITS.admission_batch}," in source
    assert "visibility_timeout=Duration.seconds(6 * function_timeout.to_seconds())" in source
    assert LIMITS.admission_visibility == 6 * LIMITS.function_timeout


def test_the_dispatcher_meets_the_targets(dispatched: scale.Outcome) -> None:
    assert dispatched.unmet(LIMITS) == []
    assert dispatched.copied == N
