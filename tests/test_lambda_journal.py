"""The copy journal: one entry per source image set version, status moving forward, queryable."""

from __future__ import annotations

from typing import Any

import pytest
from function_stubs import SOURCE, TABLE, Function

from ops.cli import journal_entries

OTHER = "d" * 32


@pytest.fixture
def journal(function: Function) -> Any:
    """The function's journal module, on moto's table."""
    return function.modules.journal


def test_an_entry_moves_forward_and_a_landed_copy_is_final(function: Function, journal: Any) -> None:
    statuses = journal.JournalStatus
    clock = function.modules.clock
    for at, status in enumerate((statuses.PENDING, statuses.STARTED, statuses.COPIED), start=1):
        clock.now = lambda at=at: 1_000.0 + at
        assert journal.record(SOURCE, "1", status, lane=journal.Lane.LIVE, decision="copy")
    # A late duplicate execution cannot turn a landed copy back into STARTED or FAILED.
    assert not journal.record(SOURCE, "1", statuses.STARTED)
    assert not journal.record(SOURCE, "1", statuses.FAILED, error="CopyConflict")
    (entry,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)
    assert (entry["journalStatus"], entry["sourceVersionId"], entry["decision"]) == ("COPIED", "1", "copy")
    assert float(entry["createdAt"]) == 1_001.0 and float(entry["updatedAt"]) == 1_003.0


def test_a_failed_entry_moves_on_when_the_copy_is_started_again(function: Function, journal: Any) -> None:
    statuses = journal.JournalStatus
    journal.record(SOURCE, "1", statuses.FAILED, error="CopyAccessDenied")
    assert journal.record(SOURCE, "1", statuses.STARTED)
    assert journal.record(SOURCE, "1", statuses.FORCED, forced=True)
    (entry,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)
    assert (entry["journalStatus"], entry["error"], entry["forced"]) == ("FORCED", "CopyAccessDenied", True)


def test_entries_are_found_by_image_set_and_by_status(function: Function, journal: Any) -> None:
    statuses = journal.JournalStatus
    clock = function.modules.clock
    writes = [(SOURCE, "1", statuses.COPIED), (SOURCE, "2", statuses.FAILED), (OTHER, "1", statuses.FAILED)]
    for at, (image_set_id, version, status) in enumerate(writes):
        clock.now = lambda at=at: 2_000.0 + at
        journal.record(image_set_id, version, status)

    versions = journal_entries(table_name=TABLE, image_set_id=SOURCE)
    assert sorted(e["sourceVersionId"] for e in versions) == ["1", "2"]
    failed = journal_entries(table_name=TABLE, status="FAILED")
    assert [(e["journalSourceId"], e["sourceVersionId"]) for e in failed] == [(SOURCE, "2"), (OTHER, "1")]
    assert [e["journalSourceId"] for e in journal_entries(table_name=TABLE, status="FAILED", since=2_002)] == [OTHER]
    assert journal.oldest_pending_change() is None
    assert journal.is_recorded(OTHER, "1") and not journal.is_recorded(OTHER, "2")


def test_journal_entries_stay_out_of_the_copy_records_destination_index(function: Function, journal: Any) -> None:
    """The copy-storm guard and confirmation read byDestination as copy records only."""
    journal.record(SOURCE, "1", journal.JournalStatus.COPIED, copiedIntoImageSetId=OTHER, copiedIntoVersionId="1")
    assert function.modules.copy_record.claims(OTHER) == []
    assert function.modules.copy_record.written_by_pipeline(OTHER, "1") is False


def test_a_pending_entry_never_expires_and_its_retention_starts_when_it_leaves_the_backlog(
    function: Function, journal: Any
) -> None:
    statuses = journal.JournalStatus
    function.modules.clock.now = lambda: 5_000.0
    journal.record(SOURCE, "1", statuses.FAILED, error="CopyConflict")
    journal.record(SOURCE, "1", statuses.PENDING, lane=journal.Lane.BULK)  # re-admitted: waits, however long
    (pending,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)
    journal.record(SOURCE, "1", statuses.STARTED)
    (started,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)

    assert "expiration" not in pending
    assert started["expiration"] == 5_000 + 731 * 86_400
