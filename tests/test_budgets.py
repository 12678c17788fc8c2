"""Every HealthImaging operation's budget, and the copies a second they allow (copier.budgets): the calls per copy
are those the steps make (counted in the emulator's call log, one copy per policy, the deployed way: admission,
the dispatcher, the execution, its completion event), and the planned rate is the tightest budget's."""

from __future__ import annotations

from collections import Counter

import pytest
from workflow import DS, local_pipeline

from copier.budgets import CALLS_PER_COPY, Operation, budgets_of, planned_rate
from copier.settings import PAGING_SEARCHES_PER_SECOND, CopyPolicy, Settings
from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator

DEFAULTS = {
    Operation.COPY_IMAGE_SET: 0.24,
    Operation.GET_IMAGE_SET: 24.0,
    Operation.GET_IMAGE_SET_METADATA: 48.0,
    Operation.SEARCH_IMAGE_SETS: 24.0 - PAGING_SEARCHES_PER_SECOND,
}


def test_the_default_quotas_copy_at_copy_rate_per_second_under_either_policy() -> None:
    for policy in CopyPolicy:
        planned = planned_rate(policy, DEFAULTS)
        assert (planned.rate, planned.binding, planned.read_bound) == (0.24, Operation.COPY_IMAGE_SET, False)


@pytest.mark.parametrize(
    ("policy", "copy_rate", "get_image_set", "rate", "binding"),
    [
        (CopyPolicy.SNAPSHOT, 10.0, 24.0, 10.0, Operation.COPY_IMAGE_SET),
        (CopyPolicy.SNAPSHOT, 40.0, 24.0, 24.0, Operation.GET_IMAGE_SET),  # CheckCopy's one read a copy binds
        (CopyPolicy.MERGE_INTO_PRIMARY, 10.0, 24.0, 8.0, Operation.GET_IMAGE_SET),  # three reads a copy
        (CopyPolicy.MERGE_INTO_PRIMARY, 10.0, 30.0, 10.0, Operation.COPY_IMAGE_SET),  # a tie: CopyImageSet's
        (CopyPolicy.MERGE_INTO_PRIMARY, 40.0, 160.0, 21.0, Operation.SEARCH_IMAGE_SETS),  # the paging's share left
    ],
)
def test_the_tightest_budget_binds(
    policy: CopyPolicy, copy_rate: float, get_image_set: float, rate: float, binding: Operation
) -> None:
    budgets = {**DEFAULTS, Operation.COPY_IMAGE_SET: copy_rate, Operation.GET_IMAGE_SET: get_image_set}
    planned = planned_rate(policy, budgets)
    assert (planned.rate, planned.binding) == (pytest.approx(rate), binding)
    assert planned.read_bound is (binding is not Operation.COPY_IMAGE_SET)
    assert min(planned.allowed.values()) == planned.rate


def test_a_backfill_pages_within_the_searches_left_to_paging() -> None:
    from infra.backfill_workflow import PAUSE_BETWEEN_PAGES

    assert 1 / PAUSE_BETWEEN_PAGES.to_seconds() < PAGING_SEARCHES_PER_SECOND  # the sweep's pages get the rest


def test_the_function_reads_its_budgets_and_the_previous_release_environment_gets_the_defaults() -> None:
    previous = Settings.model_validate({"IDEMPOTENCY_TABLE": "t", "DATASTORE_ID": DS})
    assert budgets_of(previous) == DEFAULTS
    raised = Settings.model_validate(
        {
            "IDEMPOTENCY_TABLE": "t",
            "DATASTORE_ID": DS,
            "COPY_RATE_PER_SECOND": "10",
            "GET_IMAGE_SET_RATE_PER_SECOND": "100",
            "GET_IMAGE_SET_METADATA_RATE_PER_SECOND": "60",
            "SEARCH_IMAGE_SETS_RATE_PER_SECOND": "30",
        }
    )
    assert budgets_of(raised)[Operation.SEARCH_IMAGE_SETS] == 30 - PAGING_SEARCHES_PER_SECOND
    assert budgets_of(raised)[Operation.GET_IMAGE_SET] == 100


@pytest.mark.slow
@pytest.mark.parametrize("policy", [CopyPolicy.SNAPSHOT, CopyPolicy.MERGE_INTO_PRIMARY])
def test_calls_per_copy_are_what_the_steps_make(policy: CopyPolicy) -> None:
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now)
    emulator.create_datastore(DS)
    merge = policy is CopyPolicy.MERGE_INTO_PRIMARY
    copies = 3
    sources = []
    for study in range(copies):
        if merge:  # the series' primary exists: the import is merged into it
            emulator.seed_image_set(DS, seed.series_image_set_metadata(patient_number=study, study=study, series=1))
            metadata = seed.series_image_set_metadata(patient_number=study, study=study, series=1, instances=(3, 4))
        else:
            metadata = seed.image_set_metadata(patient_number=study, study=study, series=[1])
        sources.append(emulator.seed_image_set(DS, metadata))
    with local_pipeline(emulator, clock, copyPolicy=policy.value) as pipeline:
        calls = pipeline.count_api_calls()
        refused = pipeline.admit(
            [
                seed.image_set_created_event(DS, source, is_primary=not merge, event_id=str(n))
                for n, source in enumerate(sources)
            ]
        )
        records = pipeline.drain_backlog()
    assert not refused
    assert [(record.output or {}).get("status") for record in records] == ["COPIED"] * copies
    made = Counter({name.split(":")[1]: count for name, count in calls.items() if name.startswith("medical-imaging:")})
    assert made == Counter({operation.value: n * copies for operation, n in CALLS_PER_COPY[policy].items()})
    if merge:  # the primary found on the copy's slot, its reads paced with the copies (not at the run's start)
        for record in records:
            states = record.states_entered()
            assert (
                states.index("WaitForSlotToFindPrimary")
                < states.index("FindPrimaryOfSeries")
                < states.index("StartCopy")
            )


@pytest.mark.slow
def test_a_source_updated_between_finding_its_primary_and_its_copy_is_not_copied_at_its_old_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """merge-into-primary's StartCopy does not read the source again on its slot (FindPrimaryOfSeries just did):
    another writer updating the source between the two steps is caught by CopyImageSet's own check, as the read
    would have caught it, and nothing is copied at the version that is no longer the source's."""
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now)
    emulator.create_datastore(DS)
    emulator.seed_image_set(DS, seed.series_image_set_metadata(patient_number=1, study=1, series=1))
    source = emulator.seed_image_set(
        DS, seed.series_image_set_metadata(patient_number=1, study=1, series=1, instances=(3, 4))
    )
    updated: list[str] = []
    with local_pipeline(emulator, clock, copyPolicy=CopyPolicy.MERGE_INTO_PRIMARY.value) as pipeline:
        from copier import copy_start  # the function's module, as the pipeline's environment loads it

        original = copy_start._start_copy

        def another_writer_first(*args: object, **kwargs: object) -> object:
            if not updated:  # between FindPrimaryOfSeries and StartCopy's call: the source moves on to version 2
                emulator.schedule_metadata_update(clock.now(), source)
                clock.advance(1)
                updated.append(source)
            return original(*args, **kwargs)

        monkeypatch.setattr(copy_start, "_start_copy", another_writer_first)
        assert pipeline.admit([seed.image_set_created_event(DS, source, is_primary=False)]) == []
        records = pipeline.drain_backlog()
    assert updated == [source]  # the other writer came between the two steps
    assert [(r.status, r.error) for r in records] == [("FAILED", "ImageSetVersionChanged")]
    assert emulator.accepted == []
