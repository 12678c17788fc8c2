"""The scale model's own invariants at a small N (benchmarks/scale/): what it must never let happen, and
the project code it drives. Its figures are printed by `python -m benchmarks.scale`, never asserted here."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from benchmarks.scale.limits import Limits
from benchmarks.scale.outcome import Outcome
from benchmarks.scale.scenarios import LiveLoad, simulate, simulate_lanes

N, WINDOW = 1_000, 60.0


@pytest.fixture(scope="module", params=[0.25, 10.0], ids=["default quota", "10 TPS"])
def run(request: pytest.FixtureRequest) -> tuple[Limits, Outcome]:
    limits = Limits.at(request.param)
    return limits, simulate(limits, N, WINDOW, seed=7)


def test_every_admitted_copy_ends_copied_failed_or_lost(run: tuple[Limits, Outcome]) -> None:
    _, outcome = run
    assert outcome.copies_pending == 0
    assert outcome.copied + outcome.copies_failed + outcome.copies_lost == N
    assert outcome.copies_failed <= outcome.executions_failed


def test_no_call_beyond_the_bucket_and_no_copy_beyond_the_concurrent_quota(
    run: tuple[Limits, Outcome],
) -> None:
    limits, outcome = run
    if limits.copy_burst == 1:  # every accepted pair at least 1/quota apart
        assert outcome.min_accept_gap >= 1 / limits.copy_quota - 1e-9
    assert 0 < outcome.peak_in_flight <= limits.concurrent_copies


def test_the_dispatcher_meets_the_targets_and_the_first_copy_does_not_wait_for_the_schedule(
    run: tuple[Limits, Outcome],
) -> None:
    _, outcome = run
    assert outcome.unmet() == [] and outcome.copied == N
    assert outcome.first_call < 10  # the admission consumer finds nothing planned and dispatches at once
    assert outcome.peak_late <= 60  # a backlog drained at the promised rate is never late (alarm LiveBacklogLate)


def test_a_copy_takes_eight_transitions_when_its_event_comes() -> None:
    """RouteCopy, WaitForCopySlot, StartCopy, AwaitCopy, CheckCopy, CopyFinished?, ReportResult, Copied."""
    outcome = simulate(Limits.at(0.25), 100, 10.0, seed=3)
    assert outcome.transitions == 8 * 100


def test_with_every_completion_event_dropped_every_copy_is_still_copied_after_its_fallback_wait() -> None:
    limits = Limits.at(0.25, event_drop=1.0)
    outcome = simulate(limits, 200, 10.0, seed=5)
    assert outcome.copied == 200 and outcome.executions_failed == 0
    assert outcome.calls["states:SendTaskSuccess"] == 0
    assert max(outcome.end_to_copied) <= limits.completion_wait  # the first fallback look finds it


def test_with_no_completion_events_at_a_raised_quota_the_drain_stays_within_1_05_of_the_limit() -> None:
    """10 TPS with the default 100 concurrent copies (the concurrent copies bind): a copy holds its permit from its
    slot to its landing, its produced version's updatedAt, not to the look that found it COPIED a fallback wait
    later (the dispatcher's measure of a copy's duration would grow by it: 1.33 x the limit)."""
    outcome = simulate(Limits.at(10.0, event_drop=1.0), 3_000, 60.0, seed=7)
    assert outcome.calls["states:SendTaskSuccess"] == 0 and outcome.copied == 3_000  # no event woke any copy
    assert outcome.peak_in_flight == 100  # the concurrent copies bound
    ratio = outcome.drain_ratio()
    assert ratio is not None and ratio <= 1.05 and outcome.unmet() == []


def test_a_client_taking_half_the_quota_for_a_while_slows_the_pace_which_recovers_after_it() -> None:
    limits = Limits.at(10.0, concurrent_copies=1_000)
    outcome = simulate(limits, 12_000, 60.0, seed=11, others=((5.0, 30.0, 600.0),))
    assert outcome.copied == 12_000 and outcome.executions_failed == 0
    assert outcome.throttled > 0  # the other client was there
    assert outcome.lowest_pace < 0.6 * limits.copy_rate  # AIMD: down to about the share it left
    assert outcome.last_pace == limits.copy_rate  # and back up once it had gone
    assert outcome.peak_late > 60  # the backlog fell behind what the settings promise: LiveBacklogLate sees it


def test_the_event_sources_figures_are_the_stacks() -> None:
    """Limits copies the SQS event sources' figures (importing the constructs loads the CDK)."""
    from infra import copy_completion, import_trigger, queues

    limits = Limits()
    assert limits.admission_concurrency == import_trigger.ADMISSION_CONCURRENCY
    assert limits.wake_events_per_second_per_batch == copy_completion.EVENTS_PER_SECOND_PER_BATCH
    assert limits.admission_batch == limits.wake_batch == queues.BATCH_SIZE
    assert limits.batching_window == queues.BATCHING_WINDOW_SECONDS


def test_the_pipeline_alone_never_runs_more_copies_than_the_data_store_allows() -> None:
    """A TPS quota far above what 100 concurrent copies carry (40 TPS; 100 / 45 s = 2.2 copies/s): the
    dispatcher's permits keep every call inside the concurrent-copy quota, even with runs following each
    other within seconds (a run's copies are counted only once it marked them: it holds the lease until then)."""
    limits = Limits.at(40.0)
    outcome = simulate(limits, 3_000, 60.0, seed=2)
    assert outcome.copied == 3_000 and outcome.executions_failed == 0
    assert outcome.over_quota == 0 and outcome.lowest_pace == limits.planned.rate  # GetImageSet's budget: 24


# --- the lanes (issue 23): imports while a backfill waits -------------------------------------------------------
def test_imports_arriving_while_a_backfill_waits_go_first_and_the_backfill_drains_on_what_they_leave() -> None:
    """The model's lanes are the dispatcher's (planning.shared_by_lanes, admission.split_lanes): every import is
    called within two runs of its event, the backfill drains at the physical limit less the imports, and nothing
    is lost or copied twice."""
    limits = Limits.at(1.0)
    load = LiveLoad(steady=0.1, burst=150, every=1_800.0)
    outcome = simulate_lanes(limits, load, bulk=3_000, seed=5)
    assert outcome.copied == outcome.n == 3_000 + len(outcome.live_waits) and outcome.executions_failed == 0
    assert (outcome.copies_lost, outcome.duplicates) == (0, 0)
    assert outcome.live_wait(1.0) <= 2 * 60 + 7  # the next run, and the seconds of slots the last one planned
    ratio = outcome.bulk_drain_ratio()
    assert ratio is not None and ratio <= 1.05
    assert outcome.peak_late <= 60 and outcome.peak_late_bulk <= 60


def test_the_models_lanes_are_the_dispatchers_own_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the bulk lane served first (admission.split_lanes replaced), imports wait behind the whole backfill:
    the model's figures come from the function's split, not from one of its own."""
    from benchmarks.scale.stack import planning  # the function's module the model plans with

    admission = planning.admission  # the local runner imports the function afresh: this one, not sys.modules'

    def bulk_first(slots: int, *, live: int, bulk: int, bulk_minimum_share: float, credit: float) -> Any:
        to_bulk = min(bulk, slots)
        return admission.LaneSplit(live=min(live, slots - to_bulk), bulk=to_bulk, reserved=to_bulk)

    monkeypatch.setattr(admission, "split_lanes", bulk_first)
    outcome = simulate_lanes(Limits.at(1.0), LiveLoad(steady=0.1, burst=150, every=1_800.0), bulk=1_000, seed=5)
    assert outcome.live_wait(1.0) > 10 * 60  # behind the backfill's 1,000 copies at 1 a second


# --- the read budgets (issue 24): every HealthImaging operation against its quota -----------------------------------
def test_each_steps_reads_in_the_model_are_the_calls_per_copy_the_dispatcher_plans_with() -> None:
    from benchmarks.scale import stack
    from copier.budgets import CALLS_PER_COPY, Operation
    from copier.settings import CopyPolicy

    merge = Counter([*stack.FIND_PRIMARY_READS, *stack.MERGE_START_READS, *stack.CHECK_READS, Operation.COPY_IMAGE_SET])
    assert merge == CALLS_PER_COPY[CopyPolicy.MERGE_INTO_PRIMARY]
    assert Counter([*stack.CHECK_READS, Operation.COPY_IMAGE_SET]) == CALLS_PER_COPY[CopyPolicy.SNAPSHOT]


@pytest.mark.parametrize(
    ("quota", "policy", "binding"),
    [(40.0, "snapshot", "GetImageSet"), (10.0, "merge-into-primary", "GetImageSet")],
)
def test_where_a_default_read_quota_binds_nothing_fails_and_no_read_is_throttled(
    quota: float, policy: str, binding: str
) -> None:
    """At the default read quotas: snapshot at 40 TPS (CheckCopy's GetImageSet, 25 a second, binds at 24 copies a
    second), merge-into-primary at 10 (3 GetImageSet a copy: 8). The dispatcher plans the budgets' rate, so the
    copies drain at the read quota's pace with no read throttled; the quota was what bound (peak reads near it)."""
    limits = Limits.at(quota, policy=policy, concurrent_copies=2_400)
    assert limits.planned.binding == binding and limits.physical_limit < limits.copy_quota
    outcome = simulate(limits, 3_000, 60.0, seed=4)
    assert outcome.copied == 3_000 and outcome.executions_failed == 0
    assert (outcome.copies_lost, outcome.duplicates) == (0, 0)
    assert sum(outcome.read_throttled.values()) == 0
    assert outcome.peak_reads["GetImageSet"] >= 0.8 * limits.get_image_set_quota  # the reads ran near their quota
    ratio = outcome.drain_ratio()
    assert (
        ratio is not None and ratio <= 1.07
    )  # 3,000 copies: the first run's minute weighs more than in the table's 20k


def test_a_dispatcher_planning_at_the_copy_rate_alone_overruns_the_read_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same run with the dispatcher planning copyRatePerSecond alone (the budgets ignored): reads are throttled
    and copies fail. The model's reads are real limits, and the budgets are what keeps within them."""
    limits = Limits.at(40.0, concurrent_copies=2_400)
    monkeypatch.setattr(Limits, "planned", property(planned_rate_at_copy_rate))
    outcome = simulate(limits, 3_000, 60.0, seed=4)
    assert sum(outcome.read_throttled.values()) > 0


def planned_rate_at_copy_rate(limits: Limits) -> Any:
    from copier.budgets import Operation, PlannedRate

    return PlannedRate(limits.copy_rate, Operation.COPY_IMAGE_SET, {Operation.COPY_IMAGE_SET: limits.copy_rate})
