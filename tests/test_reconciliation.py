"""Reconciliation: an image set whose event never arrived is copied by the next sweep, once."""

from __future__ import annotations

import pytest
from workflow import DS, Study, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import TABLE
from ops.cli import journal_entries

pytestmark = pytest.mark.slow


def test_an_image_set_whose_event_was_dropped_is_copied_by_the_next_sweep_once(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    with local_pipeline(emulator, clock) as pipeline:
        import copier.reconciliation  # the pipeline's freshly loaded module

        announced = pipeline.run_event(seed.image_set_created_event(DS, study.consistent))  # this one arrived
        clock.advance(600)  # past the sweep's grace period; the other image sets' events were dropped
        first = copier.reconciliation.sweep()
        records = pipeline.drain_backlog()
        clock.advance(900)
        second = copier.reconciliation.sweep()
        entries = {source: journal_entries(table_name=TABLE, image_set_id=source) for source in (study.primary,)}
        copies = [
            journal_entries(table_name=TABLE, image_set_id=(r.output or {})["destinationImageSetId"]) for r in records
        ]
        nothing_more = pipeline.drain_backlog()
    assert announced.status == "SUCCEEDED", announced.cause
    # The four seeded image sets minus the one announced; the announced copy's output is ours (skipped).
    assert first.missed == 3 and len(records) == 3
    assert all(r.status == "SUCCEEDED" and (r.output or {})["status"] == "COPIED" for r in records)
    for source in (study.primary, study.inconsistent, study.other_patient):
        assert len(emulator.accepted_copies(source)) == 1
    assert len(emulator.accepted_copies(study.consistent)) == 1  # not copied again by the sweep
    assert second.missed == 0 and nothing_more == []  # journaled now: nothing missed, nothing started twice
    (entry,) = entries[study.primary]
    assert (entry["journalStatus"], entry["reason"]) == (
        "COPIED",
        "missed event, found by reconciliation, copyPolicy snapshot",
    )
    assert first.image_sets_seen == 5  # four seeded and the announced copy's output, which is skipped
    # The second saw those five again (the windows overlap) and the three copies the first one's admissions made:
    # it journaled each as this pipeline's output, skipped, not missed.
    assert second.image_sets_seen == 8
    assert [[(e["journalStatus"], e["reason"]) for e in found] for found in copies] == 3 * [
        [("SKIPPED", "image set was written by this pipeline (copy-storm guard)")]
    ]
