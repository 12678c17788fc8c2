"""The backfill's page (action `backfill_page`) against the emulator: input validation, admission,
idempotency, the progress item and its counters, stop and hand-over between executions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType, SimpleNamespace
from typing import Any
from unittest import mock

import boto3
import pytest
from function_stubs import COPY_TABLE_SCHEMA, FUNCTION_ENV, TABLE, lambda_context, load_function
from moto import mock_aws

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.wire import attach
from ops.cli import backfill_line, retry

DS = seed.DATASTORE_ID
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:backfill:{}"


@dataclass
class Backfill:
    handler: ModuleType
    modules: SimpleNamespace
    emulator: HealthImagingEmulator
    clock: VirtualClock

    def page(self, backfill_id: str = "bf", *, execution: str = "bf-e0", **filters: Any) -> dict[str, Any]:
        event = {
            "action": "backfill_page",
            "executionId": EXECUTION.format(execution),
            "input": {"backfillId": backfill_id, "filters": filters or {"everything": True}},
        }
        answer: dict[str, Any] = self.handler.handler(event, lambda_context())
        return answer

    def run(self, backfill_id: str = "bf", **filters: Any) -> int:
        """Pages until done; how many."""
        for pages in range(1, 10_000):
            if self.page(backfill_id, **filters)["done"]:
                return pages
        raise AssertionError("never done")

    def progress(self, backfill_id: str = "bf") -> dict[str, Any]:
        item = self.modules.table.get_item(f"backfill#{backfill_id}")
        assert item is not None
        return item

    def journal(self) -> list[dict[str, Any]]:
        items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
        return [self.modules.table.from_dynamodb(i) for i in items if i["id"]["S"].startswith("journal#")]


@pytest.fixture
def backfill(monkeypatch: pytest.MonkeyPatch) -> Iterator[Backfill]:
    for key, value in FUNCTION_ENV.items():
        monkeypatch.setenv(key, value)
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now)
    emulator.create_datastore(DS)
    with mock_aws():
        boto3.client("dynamodb").create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST", **COPY_TABLE_SCHEMA)
        handler, modules = load_function()
        import copier.backfill

        modules.backfill = copier.backfill
        attach(modules.healthimaging.read_client(), emulator)
        attach(modules.healthimaging.copy_client(), emulator)
        with mock.patch.object(modules.clock, "now", clock.now):
            yield Backfill(handler, modules, emulator, clock)


def seed_image_sets(emulator: HealthImagingEmulator, count: int, *, study: int = 1) -> list[str]:
    return [
        emulator.seed_image_set(
            DS, seed.series_image_set_metadata(patient_number=1, study=study, series=n, instances=(1,))
        )
        for n in range(1, count + 1)
    ]


@pytest.mark.parametrize(
    ("backfill_input", "named"),
    [
        ({"backfillId": "bf", "filters": {}}, "filters"),
        ({"backfillId": "bf", "filters": {"everything": True, "studyInstanceUids": ["1.2"]}}, "filters"),
        ({"backfillId": "bf", "filters": {"studyInstanceUids": ["1.2.x"]}}, "filters.studyInstanceUids.0"),
        ({"backfillId": "bf", "filters": {"studyInstanceUids": []}}, "filters.studyInstanceUids"),
        ({"backfillId": "bf", "filters": {"createdAfter": "2026-01-01T00:00:00"}}, "filters.createdAfter"),
        (
            {
                "backfillId": "bf",
                "filters": {"createdAfter": "2026-02-01T00:00:00Z", "createdBefore": "2026-01-01T00:00:00Z"},
            },
            "createdAfter must be before createdBefore",
        ),
        ({"backfillId": "no spaces", "filters": {"everything": True}}, "backfillId"),
        ({"backfillId": "bf", "filters": {"everything": True}, "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_refused_naming_the_field_before_any_healthimaging_call(
    backfill: Backfill, backfill_input: dict[str, Any], named: str
) -> None:
    event = {"action": "backfill_page", "executionId": EXECUTION.format("bf-e0"), "input": backfill_input}
    with pytest.raises(backfill.modules.errors.InvalidCopyRequest, match=named):
        backfill.handler.handler(event, lambda_context())
    assert backfill.emulator.calls == []


def test_a_backfill_admits_every_image_set_once_page_by_page(backfill: Backfill) -> None:
    ids = seed_image_sets(backfill.emulator, 120)
    backfill.clock.advance(60)
    pages = backfill.run()
    entries = backfill.journal()
    progress = backfill.progress()
    assert pages == 3  # 50 + 50 + 20
    assert sorted(e["journalSourceId"] for e in entries) == sorted(ids)
    assert {(e["journalStatus"], e["backfillId"], e["reason"]) for e in entries} == {
        ("PENDING", "bf", "backfill bf, copyPolicy snapshot")
    }
    assert (progress["backfillState"], progress["seen"], progress["admitted"], progress["entriesPENDING"]) == (
        "DONE",
        120,
        120,
        120,
    )
    assert (progress["skipped"], progress["alreadyJournaled"], progress["pages"]) == (0, 0, 3)
    assert backfill.page()["done"]  # done stays done: nothing searched again
    assert backfill.progress()["seen"] == 120


def test_a_second_backfill_admits_only_what_the_first_did_not_cover(
    backfill: Backfill,
) -> None:
    seed_image_sets(backfill.emulator, 60)
    backfill.clock.advance(60)
    backfill.page()  # the first page fixes the range's end: now
    backfill.clock.advance(1)
    later = seed_image_sets(backfill.emulator, 1, study=2)
    backfill.run()
    backfill.run("again")
    first, again = backfill.progress(), backfill.progress("again")
    assert (first["seen"], first["admitted"]) == (60, 60)
    # The second backfill started after it: it finds it, and nothing else to admit.
    assert (again["seen"], again["admitted"], again["alreadyJournaled"]) == (61, 1, 60)
    assert {e["journalSourceId"]: e["backfillId"] for e in backfill.journal()}[later[0]] == "again"


def test_study_and_range_filters_select_their_image_sets(backfill: Backfill) -> None:
    first = seed_image_sets(backfill.emulator, 3, study=1)
    backfill.clock.advance(3600)
    second = seed_image_sets(backfill.emulator, 2, study=2)
    third = seed_image_sets(backfill.emulator, 2, study=3)
    backfill.run("studies", studyInstanceUids=[seed.study_uid(1, 1), seed.study_uid(1, 3)])
    studies = {e["journalSourceId"] for e in backfill.journal()}
    start = backfill.clock.now() - 1800
    backfill.run(
        "range", createdAfter=datetime.fromtimestamp(start, tz=UTC).isoformat(), createdBefore="2100-01-01T00:00:00Z"
    )
    ranged = {e["journalSourceId"] for e in backfill.journal() if e["backfillId"] == "range"}
    assert studies == set(first) | set(third)
    assert ranged == set(second)  # study 3 was admitted by the first backfill already
    assert backfill.progress("range")["alreadyJournaled"] == 2


def test_merge_into_primary_backfills_non_primary_image_sets_only(
    backfill: Backfill, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COPY_POLICY", "merge-into-primary")
    backfill.modules.settings.load_settings.cache_clear()
    primary = backfill.emulator.seed_image_set(DS, seed.series_image_set_metadata(patient_number=1, study=1, series=1))
    extra = backfill.emulator.seed_image_set(
        DS, seed.series_image_set_metadata(patient_number=1, study=1, series=1, instances=(3,))
    )
    backfill.run()
    (entry,) = backfill.journal()
    assert (entry["journalSourceId"], entry["plan"] is not None) == (extra, True)
    # The primary was never searched for (isPrimary = false), not found and skipped: one image set seen.
    assert (
        backfill.emulator.image_sets[(DS, primary)].is_primary,
        backfill.emulator.image_sets[(DS, extra)].is_primary,
    ) == (True, False)
    assert (backfill.progress()["seen"], backfill.progress()["skipped"], backfill.progress()["admitted"]) == (1, 0, 1)


def test_a_stopped_backfill_reads_nothing_more_and_a_new_owner_takes_over(backfill: Backfill) -> None:
    seed_image_sets(backfill.emulator, 120)
    backfill.page()
    table = boto3.client("dynamodb")
    table.update_item(
        TableName=TABLE,
        Key={"id": {"S": "backfill#bf"}},
        UpdateExpression="SET backfillState = :s",
        ExpressionAttributeValues={":s": {"S": "STOPPED"}},
    )
    calls = len(backfill.emulator.calls)
    assert backfill.page()["done"] and len(backfill.emulator.calls) == calls
    table.update_item(  # what ops.cli backfill resume does
        TableName=TABLE,
        Key={"id": {"S": "backfill#bf"}},
        UpdateExpression="SET backfillState = :s, executionName = :n",
        ExpressionAttributeValues={":s": {"S": "RUNNING"}, ":n": {"S": "bf-e1"}},
    )
    assert backfill.page(execution="bf-e0")["done"]  # the old execution no longer owns it
    assert not backfill.page(execution="bf-e1")["done"]
    while not backfill.page(execution="bf-e1")["done"]:
        pass
    assert (backfill.progress()["seen"], len(backfill.journal())) == (120, 120)


def test_after_its_share_of_pages_an_execution_hands_over_to_the_next(backfill: Backfill) -> None:
    ids = seed_image_sets(backfill.emulator, 120)
    started = backfill.clock.now()
    with mock.patch.object(backfill.modules.backfill, "PAGES_PER_EXECUTION", 2):
        first = backfill.page()
        backfill.clock.advance(60)
        second = backfill.page()
        stale = backfill.page()  # the handed-over execution, called again (a retry): ends
        backfill.clock.advance(60)
        seed_image_sets(backfill.emulator, 1, study=2)  # created since the backfill started
        third = backfill.page(execution="bf-e1", **second["filters"])  # the next execution's input
    assert (first["continueAsNew"], second["continueAsNew"], second["nextExecutionName"]) == (False, True, "bf-e1")
    assert stale["done"] and not stale["continueAsNew"]
    # The next execution gets the range's end fixed by the first page, not the time of the hand-over, and
    # goes on to it: the image set created since is not the backfill's.
    assert datetime.fromisoformat(second["filters"]["createdBefore"]) == datetime.fromtimestamp(started, tz=UTC)
    assert third["done"] and backfill.progress()["seen"] == 120
    assert sorted(e["journalSourceId"] for e in backfill.journal()) == sorted(ids)


def test_counters_follow_the_journal_exactly_once(backfill: Backfill) -> None:
    (image_set,) = seed_image_sets(backfill.emulator, 1)
    backfill.run()
    journal = backfill.modules.journal
    status = journal.JournalStatus
    journal.record(image_set, "1", status.STARTED, only_from=(status.PENDING,))
    journal.record(image_set, "1", status.FAILED, error="CopyAccessDenied")
    journal.record(image_set, "1", status.FAILED, error="CopyAccessDenied")  # a retried step
    failed = backfill.progress()
    readmitted = retry(table_name=TABLE).lanes["bulk"]  # ops.cli retry: FAILED -> PENDING, counted as it moves
    retried = backfill.progress()
    journal.record(image_set, "1", status.STARTED, only_from=(status.PENDING,))
    journal.record(image_set, "1", status.COPIED)
    journal.record(image_set, "1", status.COPIED)
    copied = backfill.progress()
    assert (failed["entriesFAILED"], failed["entriesPENDING"], failed["entriesSTARTED"]) == (1, 0, 0)
    assert (len(readmitted), retried["entriesFAILED"], retried["entriesPENDING"]) == (1, 0, 1)
    counts = {s: copied[f"entries{s}"] for s in ("PENDING", "STARTED", "FAILED", "COPIED")}
    assert counts == {"PENDING": 0, "STARTED": 0, "FAILED": 0, "COPIED": 1}
    assert copied["admitted"] == 1


def test_the_progress_line_reads_the_counters() -> None:
    progress = {
        "backfillState": "DONE",
        "admitted": 5_200,
        "entriesCOPIED": 2_600,
        "entriesFORCED": 100,
        "entriesFAILED": 3,
        "entriesPENDING": 2_000,
        "entriesSTARTED": 497,
    }
    assert backfill_line("x", progress) == (
        f"backfill x [{'#' * 16}{'.' * 14}]  52% admitted 5,200 copied 2,700 failed 3 remaining 2,497"
        " in the bulk lane (DONE)"
    )
    assert backfill_line("x", None) == "backfill x: not started yet (its first page has not run)"


TOKEN_LIFETIME = 3_600.0  # the emulator's; AWS does not document SearchImageSets' token lifetime


def refused_searches(emulator: HealthImagingEmulator) -> int:
    return sum(1 for operation, status in emulator.calls if operation == "SearchImageSets" and status == 400)


def test_a_backfill_resumed_after_its_token_expired_goes_on_from_its_position(backfill: Backfill) -> None:
    """Stopped for days, its saved nextToken refused (ValidationException): the search starts again from the
    createdAt of the last image set it went past, skipping those seen at that instant; no gap, nothing twice."""
    backfill.emulator.search_token_max_age_seconds = TOKEN_LIFETIME
    early = seed_image_sets(backfill.emulator, 30, study=1)
    backfill.clock.advance(10)
    # 60 at one instant: the first page ends among them.
    tied = seed_image_sets(backfill.emulator, 60, study=2)
    backfill.clock.advance(10)
    late = seed_image_sets(backfill.emulator, 40, study=3)
    backfill.clock.advance(60)
    assert backfill.page()["done"] is False  # the first 50: all 30 early ones and 20 of the tied
    backfill.clock.advance(3 * 86_400)  # resumed days later
    searches_before = len([c for c in backfill.emulator.calls if c[0] == "SearchImageSets"])
    pages = 1 + backfill.run()
    entries = backfill.journal()
    progress = backfill.progress()
    assert refused_searches(backfill.emulator) == 1  # the fault fired, once
    assert sorted(e["journalSourceId"] for e in entries) == sorted(early + tied + late)  # no gap, none twice
    assert (progress["seen"], progress["admitted"], progress.get("alreadyJournaled", 0)) == (130, 130, 0)
    # Searched again from the tied instant, not from the start: the early ones are not read again.
    searched_again = len([c for c in backfill.emulator.calls if c[0] == "SearchImageSets"]) - searches_before
    # The refused page, then from the tied instant 100 image sets (60 tied, 40 late) in two pages; from the start
    # it would have been 130 in three.
    assert (pages, searched_again) == (3, 3)


def test_a_position_keeps_a_bounded_number_of_image_sets_of_one_instant_and_still_admits_each_once(
    backfill: Backfill, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of image sets created in one second (the 10,000-image-set scale run's, at one virtual instant,
    overflowed the progress item's 400 KB): the position keeps MAX_POSITION_IDS of them; after a refused token,
    those it did not keep are read again and found in the journal."""
    monkeypatch.setattr(backfill.modules.backfill, "MAX_POSITION_IDS", 10)
    backfill.emulator.search_token_max_age_seconds = TOKEN_LIFETIME
    early = seed_image_sets(backfill.emulator, 30, study=1)
    backfill.clock.advance(10)
    tied = seed_image_sets(backfill.emulator, 60, study=2)
    backfill.clock.advance(60)
    backfill.page()  # the 30 early ones and 20 of the tied: 10 of those kept
    (kept,) = [json.loads(backfill.progress()["cursor"])["position"]["imageSetIds"]]
    backfill.clock.advance(3 * 86_400)
    backfill.run()
    entries = backfill.journal()
    progress = backfill.progress()
    assert refused_searches(backfill.emulator) == 1 and len(kept) == 10
    assert sorted(e["journalSourceId"] for e in entries) == sorted(early + tied)  # none twice
    assert (progress["seen"], progress["admitted"], progress["alreadyJournaled"]) == (100, 90, 10)


def test_a_cursor_without_a_position_starts_its_search_again_and_admits_nothing_twice(backfill: Backfill) -> None:
    """A cursor saved before positions existed (0.1.0: search and nextToken only), its token refused: the search
    starts from its beginning; what the backfill admitted already is found in the journal, not admitted again."""
    backfill.emulator.search_token_max_age_seconds = TOKEN_LIFETIME
    ids = seed_image_sets(backfill.emulator, 70)
    backfill.clock.advance(60)
    backfill.page()
    old_cursor = {"search": 0, "nextToken": json.loads(backfill.progress()["cursor"])["nextToken"]}
    backfill.modules.table.call(
        "update_item",
        Key={"id": {"S": "backfill#bf"}},
        UpdateExpression="SET #cursor = :old",
        ExpressionAttributeNames={"#cursor": "cursor"},
        ExpressionAttributeValues={":old": {"S": json.dumps(old_cursor, sort_keys=True)}},
    )
    backfill.clock.advance(2 * 86_400)
    backfill.run()
    progress = backfill.progress()
    assert refused_searches(backfill.emulator) == 1
    assert sorted(e["journalSourceId"] for e in backfill.journal()) == sorted(ids)
    assert (progress["admitted"], progress["alreadyJournaled"]) == (70, 50)
