"""The copy journal through the synthesized workflow, read back with `ops.cli status` and `list`."""

from __future__ import annotations

import pytest
from workflow import DS, Study, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import TABLE
from ops.cli import journal_entries, main

pytestmark = pytest.mark.slow


def merge_event(source: str, *, primary: bool = False) -> dict[str, object]:
    return seed.image_set_created_event(DS, source, is_primary=primary)


def test_every_decision_lands_in_the_journal(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.faults.copy_faults.append("error:AccessDeniedException")  # the first merge fails for good
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        failed = pipeline.run(merge_event(study.other_patient))
        skipped = pipeline.run(merge_event(study.primary, primary=True))
        forced = pipeline.run(merge_event(study.inconsistent))
        entries = {e["journalSourceId"]: e for e in journal_entries(table_name=TABLE, status="FORCED")}
        assert main(["status", "--table-name", TABLE, study.inconsistent]) == 0
        assert main(["list", "--table-name", TABLE, "--status", "failed"]) == 0
        (skip_entry,) = journal_entries(table_name=TABLE, image_set_id=study.primary)
        (failed_entry,) = journal_entries(table_name=TABLE, image_set_id=study.other_patient)
    assert (failed.error, skipped.output, forced.status) == (
        "CopyAccessDenied",
        {"status": "SKIPPED", "reason": "image set is already primary: nothing to merge"},
        "SUCCEEDED",
    )
    audit = entries[study.inconsistent]
    assert (audit["journalStatus"], audit["copiedIntoImageSetId"], audit["copiedIntoVersionId"]) == (
        "FORCED",
        study.primary,
        (forced.output or {})["destinationVersionId"],
    )
    assert (audit["forcePolicy"], audit["forceDecision"], audit["inconsistentElements"]) == (
        "same-patient",
        "authorised",
        ["StudyDescription"],  # names only
    )
    assert audit["executionId"].endswith(forced.name)
    assert (skip_entry["journalStatus"], skip_entry["decision"]) == ("SKIPPED", "skip")
    assert (failed_entry["journalStatus"], failed_entry["error"]) == ("FAILED", "CopyAccessDenied")
    printed = capsys.readouterr().out
    assert f"journalSourceId={study.inconsistent} sourceVersionId=1 journalStatus=FORCED" in printed
    assert f"journalSourceId={study.other_patient} sourceVersionId=1 journalStatus=FAILED" in printed
    assert "SYNTHETIC" not in printed and "FAKE" not in printed


def test_failed_copies_are_readmitted_once_with_the_plan_that_admitted_them(
    emulator: HealthImagingEmulator, clock: VirtualClock, study: Study
) -> None:
    from ops.cli import retry

    emulator.faults.copy_faults.append("error:AccessDeniedException")  # fixed by the time of the retry
    with local_pipeline(emulator, clock, copyPolicy="merge-into-primary") as pipeline:
        failed = pipeline.run_event(merge_event(study.consistent))
        retried_once = retry(table_name=TABLE)
        again = retry(table_name=TABLE)  # the entry is PENDING now: nothing to re-admit
        retried = pipeline.drain_backlog()
        (entry,) = journal_entries(table_name=TABLE, image_set_id=study.consistent)
    assert failed.error == "CopyAccessDenied"
    assert (retried_once.lanes["live"], retried_once.without_plan, again.readmitted) == (
        [f"journal#{study.consistent}#1"],
        [],
        [],
    )
    assert [record.name for record in retried] == [f"{study.consistent}-1-d1"]  # the second dispatch
    assert retried[0].status == "SUCCEEDED", retried[0].cause
    assert (retried[0].output or {})["destinationImageSetId"] == study.primary  # re-admitted as its event: merged
    assert (entry["journalStatus"], entry["copiedIntoImageSetId"]) == ("COPIED", study.primary)
    assert len(emulator.accepted_copies(study.consistent)) == 1
