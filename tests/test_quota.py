"""The account's CopyImageSet quota and the data store's concurrent copies, on the synthesized workflow with the
real handler: calls pushed back (throttled, refused over the concurrent-copy quota) take new slots and slow the
pace; the dispatcher's permits keep the copies in flight under the quota. Nothing fails for either, nothing
is copied twice."""

from __future__ import annotations

import itertools
from collections import Counter

import boto3
import pytest
from workflow import DS, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import TABLE, ExecutionRecord, LocalPipeline

pytestmark = pytest.mark.slow
RATE = 0.24


def imports(emulator: HealthImagingEmulator, count: int) -> list[str]:
    emulator.create_datastore(DS)
    return [
        emulator.seed_image_set(DS, seed.image_set_metadata(patient_number=n, study=n, series=[1]))
        for n in range(count)
    ]


def through_the_backlog(pipeline: LocalPipeline, sources: list[str]) -> list[ExecutionRecord]:
    assert pipeline.admit([seed.image_set_created_event(DS, s, event_id=str(n)) for n, s in enumerate(sources)]) == []
    return pipeline.drain_backlog()


def pacing_item() -> dict[str, str]:
    item = boto3.client("dynamodb").get_item(TableName=TABLE, Key={"id": {"S": "pacing#copy-image-set"}})["Item"]
    return {name: next(iter(value.values())) for name, value in item.items()}


@pytest.mark.parametrize(
    ("refusal", "error"),
    [("ThrottlingException", "CopyThrottled"), ("ServiceQuotaExceededException", "CopyQuotaExceeded")],
    ids=["throttle storm", "concurrent-copy quota storm"],
)
def test_a_storm_of_pushbacks_takes_new_slots_slows_the_pace_and_copies_once(
    clock: VirtualClock, refusal: str, error: str
) -> None:
    emulator = HealthImagingEmulator(clock=clock.now, copy_rate_per_second=0.25, copy_burst=1)
    sources = imports(emulator, 3)
    emulator.faults.copy_faults.extend([f"error:{refusal}"] * 12)  # another client's storm: 12 calls refused
    with local_pipeline(emulator, clock) as pipeline:
        records = through_the_backlog(pipeline, sources)
        pipeline.dispatch()  # a run after the storm adapts the pace to it
        pace = float(pacing_item()["pace"])
    assert emulator.faults.copy_faults == [] and emulator.copy_image_set_calls().count(200) == 3
    assert all(r.status == "SUCCEEDED" and (r.output or {})["status"] == "COPIED" for r in records)
    assert Counter(copy.source_id for copy in emulator.accepted) == Counter(sources)
    failures = [name for record in records for name in record.task_failures()]
    assert failures.count(error) == 12 and sum(r.states_entered().count("ReserveCopySlot") for r in records) == 12
    assert pace < RATE  # slowed for a quota someone else is using


def test_a_copy_pushed_back_on_every_slot_stops_with_the_pushbacks_name(clock: VirtualClock) -> None:
    emulator = HealthImagingEmulator(clock=clock.now)
    (source,) = imports(emulator, 1)
    emulator.faults.copy_faults.extend(["error:ServiceQuotaExceededException"] * 30)
    with local_pipeline(emulator, clock, throttleRetryAttempts=3) as pipeline:
        (record,) = through_the_backlog(pipeline, [source])
    assert (record.status, record.error) == ("FAILED", "CopyQuotaExceeded")
    assert "8 reserved slots" in (record.cause or "")  # 5 without pushbacks + throttleRetryAttempts 3
    assert emulator.accepted == []


def test_the_dispatchers_permits_keep_the_copies_in_flight_under_the_concurrent_copy_quota(
    clock: VirtualClock,
) -> None:
    """A quota of 3 concurrent copies at 10 copies a second: 10 copies, never more than 3 under way, none
    refused over the quota; the first permits wait for the copies' measured duration."""
    emulator = HealthImagingEmulator(clock=clock.now, copy_rate_per_second=10, copy_burst=40, max_concurrent_copies=3)
    sources = imports(emulator, 10)
    with local_pipeline(emulator, clock, copyRatePerSecond="9.9", concurrentCopyQuota="3") as pipeline:
        records = through_the_backlog(pipeline, sources)
    assert all(r.status == "SUCCEEDED" and (r.output or {})["status"] == "COPIED" for r in records)
    assert 402 not in emulator.copy_image_set_calls() and len(emulator.accepted) == 10
    spans = sorted((copy.accepted_at, copy.completes_at) for copy in emulator.accepted)
    in_flight = max(sum(1 for start, end in spans if start <= at < end) for at, _ in spans)
    assert in_flight == 3  # the quota used, and never exceeded
    assert all(later[0] >= earlier[0] + 1 / 9.9 - 1e-6 for earlier, later in itertools.pairwise(spans))


def test_a_run_holds_the_lease_until_its_copies_are_marked_started(clock: VirtualClock) -> None:
    """Another run meanwhile (the admission queue's, seconds later) would count the copies in flight without
    them and hand out permits the data store does not have: it finds the lease taken and does nothing."""
    emulator = HealthImagingEmulator(clock=clock.now)
    sources = imports(emulator, 3)
    with local_pipeline(emulator, clock) as pipeline:
        from copier import dispatcher  # the pipeline's fresh modules
        from copier.dispatcher import starting

        during: list[bool] = []
        start_all = starting.start_all

        def start_all_and_run_again(*args: object) -> list[str]:
            during.append(dispatcher.dispatch().ran)
            return start_all(*args)  # type: ignore[arg-type]

        starting.start_all = start_all_and_run_again  # type: ignore[assignment]
        try:
            records = through_the_backlog(pipeline, sources)
        finally:
            starting.start_all = start_all  # type: ignore[assignment]
        after = dispatcher.dispatch().ran
    assert during and not any(during) and after  # refused while starting; given back after
    assert all((r.output or {}).get("status") == "COPIED" for r in records)


def test_a_run_past_its_lease_leaves_the_lease_the_next_run_took(clock: VirtualClock) -> None:
    """A run slower than its lease (LEASE_SECONDS: a throttled StartExecution, a slow table): the next run takes
    the lease once it ran out; the slow run's end must leave that lease alone, or a third run would plan and hand
    out permits beside the second."""
    emulator = HealthImagingEmulator(clock=clock.now)
    sources = imports(emulator, 3)
    with local_pipeline(emulator, clock) as pipeline:
        from copier import dispatcher  # the pipeline's fresh modules
        from copier.dispatcher import lease, starting

        next_runs_lease = str(int(clock.now()) + 10 * lease.LEASE_SECONDS)
        start_all = starting.start_all
        overran: list[list[str]] = []

        def start_all_while_the_next_run_takes_the_lease(*args: object) -> list[str]:
            boto3.client("dynamodb").update_item(
                TableName=TABLE,
                Key={"id": {"S": "pacing#copy-image-set"}},
                UpdateExpression="SET leaseUntil = :next",
                ExpressionAttributeValues={":next": {"N": next_runs_lease}},
            )
            overran.append(start_all(*args))  # type: ignore[arg-type]
            return overran[-1]

        starting.start_all = start_all_while_the_next_run_takes_the_lease  # type: ignore[assignment]
        try:  # the admission's own run (the schedule is idle) is the slow one
            assert (
                pipeline.admit([seed.image_set_created_event(DS, s, event_id=str(n)) for n, s in enumerate(sources)])
                == []
            )
        finally:
            starting.start_all = start_all  # type: ignore[assignment]
        left = pacing_item().get("leaseUntil")
        third = dispatcher.dispatch().ran
    assert [len(started) for started in overran] == [3]  # the slow run did start its copies
    assert left == next_runs_lease and not third
