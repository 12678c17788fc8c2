"""The admission queue's consumer and the dispatcher's input: events into the backlog once, bad messages
named and dead-lettered, an admitted entry's plan read back. No HealthImaging call is stubbed unless said."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from function_stubs import DATASTORE, FUNCTION_ENV, SOURCE, TABLE, Function, healthimaging_calls, image_set, step

from offline import seed
from ops.cli import journal_entries


def sqs_batch(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": str(n),
                "receiptHandle": f"handle-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:admission",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


def created(image_set_id: str = SOURCE, **changes: Any) -> dict[str, Any]:
    event = seed.image_set_created_event(DATASTORE, image_set_id)
    event["detail"].update(changes)
    return event


def test_an_event_delivered_twice_is_one_pending_entry_holding_its_plan(function: Function) -> None:
    calls = healthimaging_calls(function)
    answer = function.invoke(sqs_batch(json.dumps(created()), json.dumps(created())))

    assert answer == {"batchItemFailures": []}
    (entry,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)
    assert (entry["journalStatus"], entry["sourceVersionId"], entry["decision"]) == ("PENDING", "1", "copy")
    plan = json.loads(entry["plan"])
    assert plan["request"]["sourceImageSetId"] == SOURCE and plan["request"]["sourceVersionId"] == "1"
    assert calls == []  # no HealthImaging call: the event names its version


def test_bad_messages_fail_alone_naming_what_is_wrong_and_the_good_one_is_admitted(
    function: Function, caplog: pytest.LogCaptureFixture
) -> None:
    bodies = (
        "not json",
        json.dumps({"datastoreId": DATASTORE, "sourceImageSetId": SOURCE}),  # console input is not an event
        json.dumps(created(imageSetId="NOT-AN-ID")),
        json.dumps(created(datastoreId="f" * 32)),
        json.dumps(created("e" * 32)),
    )

    answer = function.invoke(sqs_batch(*bodies))

    # Reported back to SQS: redelivered, then dead-lettered (maxReceiveCount), never lost.
    assert answer == {"batchItemFailures": [{"itemIdentifier": str(n)} for n in range(4)]}
    reasons = [r.reason for r in caplog.records if getattr(r, "error", None) == "InvalidCopyRequest"]  # type: ignore[attr-defined]
    assert any("not JSON" in reason for reason in reasons)
    assert any("not an EventBridge event" in reason for reason in reasons)
    assert any("imageSetId" in reason for reason in reasons)
    assert any("not this stack's data store" in reason for reason in reasons)
    assert [e["journalSourceId"] for e in journal_entries(table_name=TABLE, status="PENDING")] == ["e" * 32]
    assert journal_entries(table_name=TABLE, image_set_id=SOURCE) == []


def test_an_event_without_a_version_admits_the_version_it_announced(function: Function) -> None:
    event = created()
    del event["detail"]["imageSetVersion"]
    function.reads.add_response(
        "get_image_set", image_set(SOURCE, version="3"), {"datastoreId": DATASTORE, "imageSetId": SOURCE}
    )
    calls = healthimaging_calls(function)

    assert function.invoke(sqs_batch(json.dumps(event))) == {"batchItemFailures": []}
    (entry,) = journal_entries(table_name=TABLE, image_set_id=SOURCE)
    assert (entry["sourceVersionId"], json.loads(entry["plan"])["request"]["sourceVersionId"]) == ("3", "3")
    assert calls == ["GetImageSet"]  # one read of the version it announced


def test_the_dispatcher_input_is_the_admitted_plan_and_a_landed_copy_is_skipped(function: Function) -> None:
    function.invoke(sqs_batch(json.dumps(created())))
    admitted = {"admitted": {"sourceImageSetId": SOURCE, "sourceVersionId": "1"}}

    plan = function.invoke(step("validate", input=admitted))
    function.modules.journal.record(SOURCE, "1", function.modules.journal.JournalStatus.COPIED)
    again = function.invoke(step("validate", input=admitted))

    assert (plan["request"]["sourceImageSetId"], plan["request"]["sourceVersionId"], plan["skip"]) == (
        SOURCE,
        "1",
        False,
    )
    assert (again["skip"], again["reason"]) == (True, "already copied (copy journal: COPIED)")


@pytest.mark.parametrize(
    ("admitted", "named"),
    [
        ({"sourceImageSetId": SOURCE, "sourceVersionId": "9"}, "no admitted copy"),
        ({"sourceImageSetId": "bad", "sourceVersionId": "1"}, "sourceImageSetId"),
        ({"sourceImageSetId": SOURCE}, "sourceVersionId"),
        ({"sourceImageSetId": SOURCE, "sourceVersionId": "1", "force": True}, "force"),
    ],
)
def test_a_bad_dispatcher_input_is_refused_naming_the_field(
    function: Function, admitted: dict[str, Any], named: str
) -> None:
    with pytest.raises(Exception) as raised:
        function.invoke(step("validate", input={"admitted": admitted}))
    assert type(raised.value).__name__ == "InvalidCopyRequest"
    assert named in str(raised.value)


def test_a_copy_steps_cold_start_does_not_load_the_batch_utilities() -> None:
    """Only the admission queue's invocations need them (~60 ms of imports): loaded on the first batch."""
    lambda_dir = Path(__file__).resolve().parent.parent / "lambda"
    probe = "import sys, handler; print('aws_lambda_powertools.utilities.batch' in sys.modules)"
    env = {**os.environ, **FUNCTION_ENV, "POWERTOOLS_TRACE_DISABLED": "1"}
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=lambda_dir, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "False"
