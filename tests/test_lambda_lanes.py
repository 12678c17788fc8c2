"""The backlog's two lanes in the copy journal (moto's DynamoDB, the table's real indexes): every entry names its
lane, the lanes' index holds PENDING entries only, one version is one entry whichever lane admits it, and the
entries 0.2.0 wrote (no lane) are read as theirs and labelled, none left behind."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import pytest
from function_stubs import DATASTORE, SOURCE, TABLE, Function

import ops.cli
from ops.cli import backfill_progress, journal_entries, main, retry

OTHER = "d" * 32


@pytest.fixture
def journal(function: Function) -> Any:
    return function.modules.journal


@pytest.fixture
def legacy_lanes(function: Function) -> Iterator[ModuleType]:
    """The function's module, loaded with it; its labels one at a time (moto's DynamoDB is not thread-safe)."""
    module = importlib.import_module("copier.legacy_lanes")
    with mock.patch.object(module, "WORKERS", 1):
        yield module


@pytest.fixture
def at(function: Function) -> Iterator[list[float]]:
    """The function's clock, set by the test: at[0]."""
    now = [10_000.0]
    with mock.patch.object(function.modules.clock, "now", lambda: now[0]):
        yield now


def plan(function: Function, image_set_id: str) -> Any:
    models = function.modules.models
    request = models.CopyRequest(datastore_id=DATASTORE, source_image_set_id=image_set_id, source_version_id="1")
    return models.CopyPlan(request=request)


def waiting(journal: Any, lane: str) -> list[str]:
    return [str(entry["journalSourceId"]) for entry in journal.waiting(journal.Lane(lane), 100)]


def item(image_set_id: str) -> dict[str, Any]:
    found: dict[str, Any] = boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"id": {"S": f"journal#{image_set_id}#1"}}
    )["Item"]
    return found


def put_as_0_2_0(image_set_id: str, updated_at: float, **fields: str) -> None:
    """A PENDING entry as 0.2.0 wrote it: no lane, no backlogLane."""
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={
            "id": {"S": f"journal#{image_set_id}#1"},
            "journalSourceId": {"S": image_set_id},
            "sourceVersionId": {"S": "1"},
            "journalStatus": {"S": "PENDING"},
            "decision": {"S": "copy"},
            "updatedAt": {"N": str(updated_at)},
            "createdAt": {"N": str(updated_at)},
            **{name: {"S": value} for name, value in fields.items()},
        },
    )


def test_an_admitted_entry_waits_in_its_lane_until_it_leaves_pending(
    function: Function, journal: Any, at: list[float]
) -> None:
    statuses, lanes = journal.JournalStatus, journal.Lane
    assert journal.admit(SOURCE, "1", plan(function, SOURCE), lane=lanes.LIVE)
    at[0] += 1
    assert journal.admit(OTHER, "1", plan(function, OTHER), lane=lanes.BULK)
    listed = (waiting(journal, "live"), waiting(journal, "bulk"))
    journal.record(SOURCE, "1", statuses.STARTED, only_from=(statuses.PENDING,))
    (started,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)  # before a reader could tidy it
    after = (waiting(journal, "live"), waiting(journal, "bulk"))
    assert listed == ([SOURCE], [OTHER]) and after == ([], [OTHER])
    # The entry keeps its lane for life; the index's key goes with PENDING, in the write that leaves it.
    assert (started["lane"], "backlogLane" in started) == ("live", False)
    assert item(OTHER)["backlogLane"] == {"S": "bulk"}


def test_a_write_into_the_backlog_must_name_its_lane(journal: Any) -> None:
    with pytest.raises(ValueError, match="names its lane"):
        journal.record(SOURCE, "1", journal.JournalStatus.PENDING)


def test_each_lane_is_read_oldest_first(function: Function, journal: Any, at: list[float]) -> None:
    ids = [f"{n:032x}" for n in range(6)]
    for n, image_set_id in enumerate(ids):
        at[0] = 20_000.0 - n  # admitted newest first
        lane = journal.Lane.LIVE if n % 2 else journal.Lane.BULK
        journal.admit(image_set_id, "1", plan(function, image_set_id), lane=lane)
    assert waiting(journal, "live") == [ids[5], ids[3], ids[1]]
    assert waiting(journal, "bulk") == [ids[4], ids[2], ids[0]]
    assert [str(e["journalSourceId"]) for e in journal.waiting(journal.Lane.BULK, 2)] == [ids[4], ids[2]]


def test_an_import_event_promotes_a_version_waiting_in_the_bulk_lane_once_and_leaves_its_backfill_counts(
    function: Function, journal: Any, at: list[float]
) -> None:
    lanes = journal.Lane
    journal.admit(SOURCE, "1", plan(function, SOURCE), lane=lanes.BULK, backfillId="bf")
    before = backfill_progress(table_name=TABLE, backfill_id="bf")
    at[0] += 60
    admitted_again = journal.admit(SOURCE, "1", plan(function, SOURCE), lane=lanes.LIVE)  # create-only
    promoted = [journal.promote(SOURCE, "1"), journal.promote(SOURCE, "1")]  # the event delivered twice
    (entry,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)
    assert (admitted_again, promoted) == (False, [True, False])
    assert (entry["lane"], entry["journalStatus"], float(entry["updatedAt"])) == ("live", "PENDING", 10_060.0)
    assert (waiting(journal, "live"), waiting(journal, "bulk")) == ([SOURCE], [])
    assert backfill_progress(table_name=TABLE, backfill_id="bf") == before  # admitted 1, PENDING 1: unchanged


def test_a_live_entry_or_one_no_longer_pending_is_never_promoted_nor_moved(
    function: Function, journal: Any, at: list[float]
) -> None:
    statuses, lanes = journal.JournalStatus, journal.Lane
    journal.admit(SOURCE, "1", plan(function, SOURCE), lane=lanes.LIVE)
    journal.admit(OTHER, "1", plan(function, OTHER), lane=lanes.BULK, backfillId="bf")
    journal.record(OTHER, "1", statuses.STARTED, only_from=(statuses.PENDING,))
    before = (item(SOURCE), item(OTHER))
    at[0] += 60
    assert [journal.promote(SOURCE, "1"), journal.promote(OTHER, "1"), journal.promote("e" * 32, "1")] == [False] * 3
    assert (item(SOURCE), item(OTHER)) == before
    with pytest.raises(KeyError):
        item("e" * 32)  # a promotion creates nothing


def test_an_entry_of_0_2_0_is_read_in_its_lane_and_a_backfills_one_is_promoted_by_its_event(
    function: Function, journal: Any, at: list[float]
) -> None:
    put_as_0_2_0(SOURCE, 9_000.0, backfillId="bf")
    put_as_0_2_0(OTHER, 9_001.0)
    lanes = [journal.lane_of(journal.read(image_set_id, "1")) for image_set_id in (SOURCE, OTHER)]
    assert lanes == [journal.Lane.BULK, journal.Lane.LIVE]
    assert journal.promote(SOURCE, "1") and not journal.promote(OTHER, "1")
    assert waiting(journal, "live") == [SOURCE]  # labelled by its promotion


def test_a_label_a_release_without_lanes_left_on_an_entry_it_moved_on_is_taken_off(
    function: Function, journal: Any
) -> None:
    """0.2.0's code moves an entry out of PENDING without removing a label it does not know (an event given to an
    execution by hand, running on 0.2.0's function version): the lane's reader leaves it out and unlabels it."""
    journal.admit(SOURCE, "1", plan(function, SOURCE), lane=journal.Lane.LIVE)
    journal.admit(OTHER, "1", plan(function, OTHER), lane=journal.Lane.LIVE)
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"id": {"S": f"journal#{SOURCE}#1"}},
        UpdateExpression="SET journalStatus = :started",
        ExpressionAttributeValues={":started": {"S": "STARTED"}},
    )
    assert waiting(journal, "live") == [OTHER]
    assert "backlogLane" not in item(SOURCE) and item(OTHER)["backlogLane"] == {"S": "live"}


def test_a_retry_readmits_into_the_lane_it_is_given(function: Function, journal: Any) -> None:
    statuses = journal.JournalStatus
    journal.admit(SOURCE, "1", plan(function, SOURCE), lane=journal.Lane.LIVE)
    journal.record(SOURCE, "1", statuses.FAILED, error="CopyAccessDenied")
    (failed,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)
    assert journal.readmit(failed, journal.Lane.BULK) and not journal.readmit(failed, journal.Lane.LIVE)
    (entry,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)
    assert (entry["lane"], entry["dispatches"], waiting(journal, "bulk")) == ("bulk", 1, [SOURCE])


# --- 0.2.0's entries labelled for the lanes' index (copier.legacy_lanes) --------------------------------------
def pacing_item() -> dict[str, Any]:
    found: dict[str, Any] = (
        boto3.client("dynamodb").get_item(TableName=TABLE, Key={"id": {"S": "pacing#copy-image-set"}}).get("Item", {})
    )
    return found


def state(function: Function) -> dict[str, Any]:
    return function.modules.table.get_item("pacing#copy-image-set") or {}


def test_every_entry_of_0_2_0_is_labelled_in_its_lane_in_place_once_and_the_cursor_moves_on(
    function: Function, journal: Any, legacy_lanes: ModuleType, at: list[float]
) -> None:
    ids = [f"{n:032x}" for n in range(12)]
    for n, image_set_id in enumerate(ids):
        put_as_0_2_0(image_set_id, 5_000.0 + n, **({"backfillId": "bf"} if n % 3 == 0 else {}))
    journal.admit(SOURCE, "1", plan(function, SOURCE), lane=journal.Lane.LIVE)  # this release's: labelled already
    before = {image_set_id: item(image_set_id)["updatedAt"] for image_set_id in ids}
    first = legacy_lanes.label_unlaned(state(function), at[0], seconds=30.0)
    second = legacy_lanes.label_unlaned(state(function), at[0], seconds=30.0)  # nothing new: reads nothing
    assert (first.read, first.labelled, first.caught_up) == (12, 12, True)  # SOURCE is newer than the lag
    assert (second.read, second.labelled, second.caught_up) == (0, 0, True)
    assert waiting(journal, "bulk") == ids[::3]
    assert waiting(journal, "live") == [i for n, i in enumerate(ids) if n % 3] + [SOURCE]
    assert {image_set_id: item(image_set_id)["updatedAt"] for image_set_id in ids} == before  # places kept
    assert pacing_item()["labelTailId"] == {"S": f"journal#{ids[-1]}#1"}  # 0.2.0's backlog, older than the head
    at[0] += legacy_lanes.LAG_SECONDS
    third = legacy_lanes.label_unlaned(state(function), at[0], seconds=30.0)
    assert (third.read, third.labelled) == (1, 0)  # this release's entry, read once more, written never


def test_the_last_imports_of_0_2_0_are_labelled_first_and_its_backlog_after_them(
    function: Function, journal: Any, legacy_lanes: ModuleType, at: list[float]
) -> None:
    """At the upgrade, 0.2.0's backlog (a backfill's, days old) and its last imports (minutes before the deploy):
    the head, from an hour before the first labelling run, takes the imports in that run's first second; the tail
    then works through the backlog, oldest first, with the time left."""
    backlog = [f"{n:032x}" for n in range(6)]
    for n, image_set_id in enumerate(backlog):
        put_as_0_2_0(image_set_id, 1_000.0 + n, backfillId="bf")
    put_as_0_2_0(SOURCE, at[0] - 600)  # an import 0.2.0 admitted ten minutes before
    with mock.patch.object(legacy_lanes, "LABELS_PER_SECOND", 2.0):  # time for 3 labels: the import's and 2
        first = legacy_lanes.label_unlaned(state(function), at[0], seconds=1.25)
    labelled_first = (waiting(journal, "live"), waiting(journal, "bulk"))
    rest = legacy_lanes.label_unlaned(state(function), at[0] + 60, seconds=30.0)
    assert labelled_first == ([SOURCE], backlog[:2])
    assert (first.labelled, first.caught_up, rest.labelled, rest.caught_up) == (3, False, 4, True)
    assert waiting(journal, "bulk") == backlog
    assert float(pacing_item()["labelHeadFrom"]["N"]) == at[0] - legacy_lanes.LAG_SECONDS - 3_600


def test_the_cursor_stays_behind_writes_in_flight_and_finds_them_later(
    function: Function, journal: Any, legacy_lanes: ModuleType, at: list[float]
) -> None:
    """An entry 0.2.0 wrote with an updatedAt the cursor would pass had it gone up to now: it stays LAG_SECONDS
    behind, so the entry is found by a later run, not skipped."""
    put_as_0_2_0(SOURCE, at[0] - 10)
    early = legacy_lanes.label_unlaned(state(function), at[0], seconds=30.0)
    at[0] += legacy_lanes.LAG_SECONDS
    later = legacy_lanes.label_unlaned(state(function), at[0], seconds=30.0)
    assert (early.read, later.read, later.labelled) == (0, 1, 1)
    assert waiting(journal, "live") == [SOURCE]


def test_entries_of_one_instant_across_pages_and_runs_are_each_labelled_once(
    function: Function, journal: Any, legacy_lanes: ModuleType, at: list[float]
) -> None:
    """A backfill page writes its entries at one instant (the virtual clock here): the cursor is a key of the index
    (updatedAt and the entry's id), so a page boundary inside an instant loses none and repeats none."""
    ids = [f"{n:032x}" for n in range(25)]
    for image_set_id in ids:
        put_as_0_2_0(image_set_id, 5_000.0, backfillId="bf")
    with mock.patch.object(legacy_lanes, "PAGE", 4), mock.patch.object(legacy_lanes, "READS_PER_RUN", 10):
        runs = [legacy_lanes.label_unlaned(state(function), at[0], seconds=30.0) for _ in range(3)]
    assert [(run.read, run.labelled, run.caught_up) for run in runs] == [(10, 10, False), (10, 10, False), (5, 5, True)]
    assert sorted(waiting(journal, "bulk")) == ids


def test_a_run_out_of_time_moves_the_cursor_only_past_what_it_labelled(
    function: Function, journal: Any, legacy_lanes: ModuleType, at: list[float]
) -> None:
    ids = [f"{n:032x}" for n in range(6)]
    for n, image_set_id in enumerate(ids):
        put_as_0_2_0(image_set_id, 5_000.0 + n)
    with mock.patch.object(legacy_lanes, "LABELS_PER_SECOND", 2.0):  # two labels a second: 1.25 s give 3 turns
        short = legacy_lanes.label_unlaned(state(function), at[0], seconds=1.25)
    rest = legacy_lanes.label_unlaned(state(function), at[0], seconds=30.0)
    assert (short.read, short.labelled, short.caught_up) == (3, 3, False)
    assert (rest.read, rest.labelled, rest.caught_up) == (3, 3, True)
    assert waiting(journal, "live") == ids


def test_an_entry_moved_on_before_its_label_is_not_labelled(
    function: Function, journal: Any, legacy_lanes: ModuleType, at: list[float]
) -> None:
    put_as_0_2_0(SOURCE, 5_000.0)
    (entry,), _ = journal.pending_after(None, None, at[0], 10)
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"id": {"S": f"journal#{SOURCE}#1"}},
        UpdateExpression="SET journalStatus = :started",
        ExpressionAttributeValues={":started": {"S": "STARTED"}},
    )
    assert not journal.label(entry) and "backlogLane" not in item(SOURCE)


def test_a_cursor_another_run_moved_meanwhile_is_not_moved_back(
    function: Function, legacy_lanes: ModuleType, at: list[float]
) -> None:
    for n in range(3):
        put_as_0_2_0(f"{n:032x}", 5_000.0 + n)
    stale = state(function)  # read by a run that a duplicated schedule delivery overtakes
    legacy_lanes.label_unlaned(state(function), at[0], seconds=30.0)
    moved = pacing_item()["labelTailId"]
    put_as_0_2_0(OTHER, 5_001.5)
    legacy_lanes.label_unlaned(stale, at[0], seconds=30.0)
    assert pacing_item()["labelTailId"] == moved == {"S": f"journal#{2:032x}#1"}
    assert waiting(function.modules.journal, "live") == [f"{n:032x}" for n in range(2)] + [OTHER, f"{2:032x}"]


# --- operators: retry chooses a lane, list and status show it, a sweep promotes ------------------------------------
def failed_entries(function: Function, journal: Any, count: int, **fields: str) -> list[str]:
    """`count` copies admitted (live, or a backfill's with backfillId) and FAILED; their image set ids."""
    ids = [f"{n:032x}" for n in range(count)]
    lane = journal.Lane.BULK if "backfillId" in fields else journal.Lane.LIVE
    for image_set_id in ids:
        journal.admit(image_set_id, "1", plan(function, image_set_id), lane=lane, **fields)
        journal.record(image_set_id, "1", journal.JournalStatus.FAILED, error="CopyAccessDenied")
    return ids


def test_a_retry_readmits_each_failure_into_its_own_lane_and_prints_which(
    function: Function, journal: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    failed_entries(function, journal, 2)
    put_as_0_2_0(OTHER, 5_000.0, backfillId="bf")  # 0.2.0's, failed: a backfill's, so bulk
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"id": {"S": f"journal#{OTHER}#1"}},
        UpdateExpression="SET journalStatus = :failed, #plan = :plan",
        ExpressionAttributeNames={"#plan": "plan"},
        ExpressionAttributeValues={":failed": {"S": "FAILED"}, ":plan": {"S": plan(function, OTHER).model_dump_json()}},
    )
    assert main(["retry", "--table-name", TABLE, "--status", "failed"]) == 0
    printed = capsys.readouterr().out
    assert "re-admitted 3 cop(ies) to the backlog: 2 into the live lane, 1 into the bulk lane" in printed
    assert f"journal#{OTHER}#1 lane=bulk" in printed and "large retry" not in printed
    assert (sorted(waiting(journal, "live")), waiting(journal, "bulk")) == ([f"{n:032x}" for n in range(2)], [OTHER])


@pytest.fixture
def large_retry() -> Iterator[int]:
    """ops.cli's threshold of a large retry, lowered to 3 live entries here (100 in the product: moto is slow)."""
    with mock.patch.object(ops.cli, "LARGE_RETRY", 3):
        yield 3


def test_a_large_retry_goes_to_the_bulk_lane_unless_told_live(
    function: Function, journal: Any, large_retry: int
) -> None:
    ids = failed_entries(function, journal, large_retry + 1)
    large = retry(table_name=TABLE)
    assert (large.large, len(large.lanes["bulk"]), large.lanes["live"]) == (True, large_retry + 1, [])
    for image_set_id in ids:  # failed again
        journal.record(image_set_id, "1", journal.JournalStatus.FAILED, error="CopyAccessDenied")
    told = retry(table_name=TABLE, lane="live")
    assert (told.large, len(told.lanes["live"]), told.lanes["bulk"]) == (False, large_retry + 1, [])
    assert sorted(waiting(journal, "live")) == ids


def test_a_retry_of_as_many_live_failures_as_the_threshold_stays_live(
    function: Function, journal: Any, large_retry: int
) -> None:
    failed_entries(function, journal, large_retry)
    retried = retry(table_name=TABLE)
    assert (retried.large, len(retried.lanes["live"])) == (False, large_retry)


def test_a_large_retry_is_a_hundred_live_entries() -> None:
    """100 copies are 7 minutes of the default quota (0.24 a second): docs/operations.md says so."""
    assert ops.cli.LARGE_RETRY == 100 and round(100 / 0.24 / 60) == 7


def test_list_and_status_show_each_entrys_lane_an_entry_of_0_2_0_as_read(
    function: Function, journal: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    put_as_0_2_0(SOURCE, 5_000.0, backfillId="bf")
    journal.admit(OTHER, "1", plan(function, OTHER), lane=journal.Lane.LIVE)
    assert main(["list", "--table-name", TABLE, "--status", "pending"]) == 0
    assert main(["status", "--table-name", TABLE, SOURCE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"journalSourceId={SOURCE} sourceVersionId=1 journalStatus=PENDING lane=bulk" in lines[0]
    assert f"journalSourceId={OTHER} sourceVersionId=1 journalStatus=PENDING lane=live" in lines[1]
    assert "lane=bulk" in lines[3]


def test_a_sweep_that_finds_a_backfills_copy_of_a_new_image_set_promotes_it(
    function: Function, journal: Any, at: list[float]
) -> None:
    """A backfill admitted a new image set (its range reaching past the import) before its event was admitted, and
    the event never came: the sweep finds its entry waiting in the bulk lane and moves it to the live lane, as the
    event would have; one that is live already, or started, is left as it is."""
    journal.admit(SOURCE, "1", plan(function, SOURCE), lane=journal.Lane.BULK, backfillId="bf")
    journal.admit(OTHER, "1", plan(function, OTHER), lane=journal.Lane.LIVE)
    summaries = [
        {"imageSetId": image_set_id, "version": 1, "createdAt": datetime.fromtimestamp(at[0] - 600, tz=UTC)}
        for image_set_id in (SOURCE, OTHER)
    ]
    function.reads.add_response("search_image_sets", {"imageSetsMetadataSummaries": summaries})
    swept = function.invoke({"action": "reconcile"})
    function.reads.assert_no_pending_responses()
    assert (swept["missed"], swept["promoted"]) == (0, 1)
    assert sorted(waiting(journal, "live")) == sorted([SOURCE, OTHER]) and waiting(journal, "bulk") == []
