"""The dispatcher's execution input across a deploy, on the synthesized workflow with the real handler: an
execution the previous release's dispatcher started (`{"admitted": ...}` alone, no plan, no slot) is still in
flight when this release lands; it validates, reads its plan from the journal, reserves its own slot and copies
once, and no dispatcher run starts it again."""

from __future__ import annotations

import boto3
import pytest
from workflow import DS, local_pipeline

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import TABLE

pytestmark = pytest.mark.slow


def test_an_execution_started_with_the_entry_alone_copies_once_through_its_own_slot(clock: VirtualClock) -> None:
    emulator = HealthImagingEmulator(clock=clock.now)
    emulator.create_datastore(DS)
    source = emulator.seed_image_set(DS, seed.image_set_metadata(patient_number=1, study=1, series=[1]))
    with local_pipeline(emulator, clock) as pipeline:
        from copier import intake  # the pipeline's fresh modules

        # Admitted by the previous release (PENDING), and started by its dispatcher with the entry alone.
        plan = intake.plan_for_image_set(
            source, "1", is_primary=True, why="an event, before the deploy", lane=intake.Lane.LIVE
        )
        record = pipeline.run({"admitted": {"sourceImageSetId": source, "sourceVersionId": "1"}}, name=f"{source}-1")
        again = pipeline.dispatch()
        entry = boto3.client("dynamodb").get_item(TableName=TABLE, Key={"id": {"S": f"journal#{source}#1"}})["Item"]
    assert not plan.skip
    assert (record.status, (record.output or {}).get("status")) == ("SUCCEEDED", "COPIED")
    entered = record.states_entered()
    assert entered[:3] == ["RouteCopy", "ValidateInput", "RouteCopy"]
    assert "ReserveCopySlot" in entered and "AwaitCopy" in entered  # its own slot, then woken by its event
    assert len(emulator.accepted_copies(source)) == 1 and again == []
    assert entry["journalStatus"]["S"] == "COPIED"
