"""The live lane's alarm (LiveBacklogLate) on the synthesized workflow with the real handler: a backlog of imports
the quota takes long to drain is old, not late; one nothing started for an hour is an hour late until it drains.
(The bulk lane's lateness against its share: tests/test_lambda_admission.py.)"""

from __future__ import annotations

import pytest
from function_stubs import emf_documents
from workflow import DS, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import LocalPipeline

pytestmark = pytest.mark.slow
PERIOD = 60  # the dispatcher's schedule


def imports(emulator: HealthImagingEmulator, count: int) -> list[dict[str, object]]:
    emulator.create_datastore(DS)
    sources = [
        emulator.seed_image_set(DS, seed.image_set_metadata(patient_number=n, study=n, series=[1]))
        for n in range(count)
    ]
    return [seed.image_set_created_event(DS, s, event_id=str(n)) for n, s in enumerate(sources)]


def backlog_metrics(pipeline: LocalPipeline) -> tuple[list[float], list[float]]:
    """Each dispatcher run's LiveOldestPendingAgeSeconds and LiveBacklogLateSeconds, in order."""
    documents = [d for d in emf_documents(pipeline.logs.getvalue()) if "LiveBacklogLateSeconds" in d]
    return (
        [d["LiveOldestPendingAgeSeconds"][0] for d in documents],
        [d["LiveBacklogLateSeconds"][0] for d in documents],
    )


def test_a_backlog_the_quota_drains_slowly_grows_old_but_never_late(clock: VirtualClock) -> None:
    emulator = HealthImagingEmulator(clock=clock.now)  # 0.25 copies a second, burst 1: the default quota
    with local_pipeline(emulator, clock) as pipeline:
        assert pipeline.admit(imports(emulator, 100)) == []
        records = pipeline.drain_backlog()
        ages, late = backlog_metrics(pipeline)
    assert len(records) == 100 and all((r.output or {}).get("status") == "COPIED" for r in records)
    assert max(ages) >= 5 * PERIOD  # the last copies waited minutes: 100 at 0.24/s take 417 s
    assert max(late) <= PERIOD and late[-1] == 0.0  # on time: at worst the next run's wait


def test_a_backlog_nothing_started_for_an_hour_is_an_hour_late_until_it_drains(clock: VirtualClock) -> None:
    emulator = HealthImagingEmulator(clock=clock.now, copy_rate_per_second=100.0, copy_burst=100.0)
    with local_pipeline(emulator, clock) as pipeline:
        clock.join()  # the admission and the first run (at once: the schedule was idle) at one instant
        assert pipeline.admit(imports(emulator, 40)) == []
        pipeline.dispatch()  # the first minute's copies are all started (16 at 0.24/s)
        clock.advance(3_600)  # then the schedule is off for an hour (DispatcherSilent's case)
        clock.leave()
        records = pipeline.drain_backlog()
        _, late = backlog_metrics(pipeline)
    assert len(records) == 40
    assert all((r.output or {}).get("status") == "COPIED" for r in records)
    stalled = [seconds for seconds in late if seconds > 0]
    # The first run after the hour hands out a minute's copies (16 more): the oldest still waiting was due 32
    # copies (133 s) after the burst.
    assert stalled and 3_600 - 3 * PERIOD <= stalled[0] <= 3_600
    assert late[-1] == 0.0  # drained: nothing late any more


def test_every_run_writes_how_late_the_backlog_is_even_with_nothing_pending(clock: VirtualClock) -> None:
    """DispatcherSilent's heartbeat: only dispatcher runs write LiveBacklogLateSeconds, 0 with no backlog."""
    with local_pipeline(clock=clock) as pipeline:
        runs = [pipeline.dispatch() for _ in range(2)]
        _, late = backlog_metrics(pipeline)
    assert runs == [[], []] and late == [0.0, 0.0]
