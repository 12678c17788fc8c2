"""Operator CLI for a deployed stack: start a copy, redrive dead-lettered events, read and re-admit the journal.

    python -m ops.cli start --state-machine-arn ARN --source-image-set-id ID [--destination-image-set-id ID]
                            [--copiable-attributes JSON] [--force] [--promote-to-primary]
    python -m ops.cli redrive --queue-url DLQ_URL --admission-queue-url URL
    python -m ops.cli resolve --table-name NAME --record-id copy#... (--not-accepted | --accepted-into ID:VERSION)
    python -m ops.cli status --table-name NAME IMAGE_SET_ID
    python -m ops.cli list --table-name NAME --status failed [--since 2026-11-01T00:00:00Z]
    python -m ops.cli retry --table-name NAME --status failed [--since ...]

Both use the same input contract as the console (README, "Starting a copy by hand").
Execution names are derived from the input, so starting the same thing twice while it runs,
or after it succeeded, returns that execution; a copy whose last execution FAILED, TIMED_OUT
or ABORTED is started anew (the copy record still keeps an accepted copy from being repeated).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

NAME_UNSAFE = re.compile(r"[^0-9A-Za-z_-]")


def execution_name(prefix: str, payload: dict[str, Any]) -> str:
    """A name Step Functions accepts (80 chars, [0-9A-Za-z_-]) that is the same for the same input."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]
    return NAME_UNSAFE.sub("-", f"{prefix}-{digest}")[:80]


ENDED_WITHOUT_SUCCESS = ("FAILED", "TIMED_OUT", "ABORTED")
MAX_RESTARTS = 99


def start(*, state_machine_arn: str, copy_input: dict[str, Any], client: Any = None) -> str:
    """The execution of this copy: the running or succeeded one, or a new one."""
    sfn = client or boto3.client("stepfunctions")
    base = execution_name("console", copy_input)
    for restart in range(MAX_RESTARTS + 1):
        name = base if restart == 0 else f"{base[:76]}-r{restart:02d}"
        try:
            return str(
                sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(copy_input))[
                    "executionArn"
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
        arn = state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        if sfn.describe_execution(executionArn=arn)["status"] not in ENDED_WITHOUT_SUCCESS:
            return arn  # RUNNING, PENDING_REDRIVE or SUCCEEDED: that is this copy
    raise RuntimeError(f"{MAX_RESTARTS} restarts of this copy have already ended without success: look first")


def redrive(*, queue_url: str, admission_queue_url: str) -> int:
    """Move every dead-lettered event back to the admission queue (admission is idempotent: an event
    twice is one journal entry); a message is deleted only once sent. Returns how many moved."""
    sqs = boto3.client("sqs")
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            return moved
        for message in messages:
            sqs.send_message(QueueUrl=admission_queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def resolve(*, table_name: str, record_id: str, accepted_into: tuple[str, str] | None, client: Any = None) -> str:
    """Settle a copy record ConfirmCopy could not decide (CopyOutcomeUndecided), after looking:
    accepted into that image set version (claimed, as ConfirmCopy would), or not accepted (the next
    start calls CopyImageSet again). Only a record still waiting for confirmation (CALLING) changes."""
    dynamodb = client or boto3.client("dynamodb")
    names = {"#status": "status"}
    values: dict[str, Any] = {":calling": {"S": "CALLING"}}
    if accepted_into is None:
        update = "SET #status = :status"
        values[":status"] = {"S": "NOT_ACCEPTED"}
    else:
        update = "SET #status = :status, destinationImageSetId = :image_set, destinationVersionId = :version"
        values.update(
            {":status": {"S": "ACCEPTED"}, ":image_set": {"S": accepted_into[0]}, ":version": {"S": accepted_into[1]}}
        )
    items: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": table_name,
                "Key": {"id": {"S": record_id}},
                "UpdateExpression": update,
                "ConditionExpression": "#status = :calling",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
    ]
    if accepted_into is not None:
        claim = f"claim#{accepted_into[0]}#{accepted_into[1]}"
        items.append(
            {
                "Put": {
                    "TableName": table_name,
                    "Item": {"id": {"S": claim}, "recordId": {"S": record_id}},
                    "ConditionExpression": "attribute_not_exists(id)",
                }
            }
        )
    try:
        dynamodb.transact_write_items(TransactItems=items)
    except ClientError as error:
        if error.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        raise SystemExit(
            f"{record_id} was not changed: it is not waiting for confirmation, or that version is claimed already"
        ) from None
    return "NOT_ACCEPTED" if accepted_into is None else "ACCEPTED"


# The copy journal's indexes (lambda/copier/journal.py; tests/test_ops_cli.py checks they agree).
JOURNAL_BY_SOURCE = "journalBySource"
JOURNAL_BY_STATUS = "journalByStatus"
JOURNAL_STATUSES = ("PENDING", "SKIPPED", "STARTED", "COPIED", "FORCED", "FAILED")
JOURNAL_COLUMNS = (
    "journalSourceId", "sourceVersionId", "journalStatus", "decision", "reason", "copiedIntoImageSetId",
    "copiedIntoVersionId", "forced", "forcePolicy", "forceDecision", "inconsistentElements", "error",
    "executionId", "dispatches", "updatedAt",
)  # fmt: skip


def journal_entries(
    *,
    table_name: str,
    image_set_id: str | None = None,
    status: str | None = None,
    since: float = 0.0,
    client: Any = None,
) -> list[dict[str, Any]]:
    """Journal entries of one image set (every version), or in one status changed since a time, oldest first."""
    dynamodb = client or boto3.client("dynamodb")
    if image_set_id is not None:
        query = {
            "IndexName": JOURNAL_BY_SOURCE,
            "KeyConditionExpression": "journalSourceId = :value",
            "ExpressionAttributeValues": {":value": {"S": image_set_id}},
        }
    else:
        query = {
            "IndexName": JOURNAL_BY_STATUS,
            "KeyConditionExpression": "journalStatus = :value AND updatedAt >= :since",
            "ExpressionAttributeValues": {":value": {"S": str(status)}, ":since": {"N": repr(since)}},
        }
    deserializer = TypeDeserializer()
    entries: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("query").paginate(TableName=table_name, **query):
        entries.extend({k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"])
    return entries


def _journal_line(entry: dict[str, Any]) -> str:
    values = []
    for column in JOURNAL_COLUMNS:
        value = entry.get(column)
        if value is None:
            continue
        if column == "updatedAt":
            value = datetime.fromtimestamp(float(value), tz=UTC).isoformat(timespec="seconds")
        elif isinstance(value, list):
            value = ",".join(str(v) for v in value) or "-"
        values.append(f"{column}={value}")
    return " ".join(values)


def retry(*, table_name: str, since: float = 0.0, client: Any = None) -> tuple[list[str], list[str]]:
    """Re-admit every copy whose journal entry is FAILED (changed since a time) to the backlog, with the
    plan it was admitted with: the dispatcher starts it at the quota's pace, under a new execution name
    (its dispatch count goes up), and the copy records keep an accepted copy from being repeated.
    Returns (entries re-admitted, FAILED entries that hold no plan: console copies that never reached
    StartCopy, to start again by hand). Running it twice re-admits nothing twice: only FAILED entries move."""
    dynamodb = client or boto3.client("dynamodb")
    readmitted: list[str] = []
    without_plan: list[str] = []
    for entry in journal_entries(table_name=table_name, status="FAILED", since=since, client=dynamodb):
        if not entry.get("plan"):
            without_plan.append(entry["id"])
            continue
        try:
            dynamodb.update_item(
                TableName=table_name,
                Key={"id": {"S": entry["id"]}},
                UpdateExpression="SET journalStatus = :pending, updatedAt = :now, "
                "dispatches = if_not_exists(dispatches, :zero) + :one",
                ConditionExpression="journalStatus = :failed",
                ExpressionAttributeValues={
                    ":pending": {"S": "PENDING"},
                    ":failed": {"S": "FAILED"},
                    ":now": {"N": repr(time.time())},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            continue  # moved on meanwhile (re-admitted by another retry, or started again by hand)
        readmitted.append(entry["id"])
    return readmitted, without_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start one copy")
    start_parser.add_argument("--state-machine-arn", required=True)
    start_parser.add_argument("--datastore-id", required=True)
    start_parser.add_argument("--source-image-set-id", required=True)
    for option in (
        "--source-version-id",
        "--destination-image-set-id",
        "--destination-version-id",
        "--copiable-attributes",
    ):
        start_parser.add_argument(option)
    start_parser.add_argument("--force", action="store_true")
    start_parser.add_argument("--promote-to-primary", action="store_true")
    redrive_parser = commands.add_parser("redrive", help="move dead-lettered events back to the admission queue")
    redrive_parser.add_argument("--queue-url", required=True, help="the stack's output DeadLetterQueueUrl")
    redrive_parser.add_argument("--admission-queue-url", required=True, help="the stack's output AdmissionQueueUrl")
    resolve_parser = commands.add_parser("resolve", help="settle a copy ConfirmCopy could not decide")
    resolve_parser.add_argument("--table-name", required=True, help="the stack's output CopyTableName")
    resolve_parser.add_argument("--record-id", required=True, help="copy#..., named in the CopyOutcomeUndecided cause")
    outcome = resolve_parser.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--not-accepted", action="store_true", help="no image set holds the copy")
    outcome.add_argument("--accepted-into", metavar="IMAGE_SET_ID:VERSION", help="the version that holds the copy")
    status_parser = commands.add_parser("status", help="the copy journal of one image set, every version")
    status_parser.add_argument("--table-name", required=True, help="the stack's output CopyTableName")
    status_parser.add_argument("image_set_id")
    list_parser = commands.add_parser("list", help="copy journal entries in one status")
    list_parser.add_argument("--table-name", required=True, help="the stack's output CopyTableName")
    list_parser.add_argument("--status", required=True, type=str.upper, choices=JOURNAL_STATUSES)
    list_parser.add_argument("--since", type=datetime.fromisoformat, help="ISO time: entries changed since then")
    retry_parser = commands.add_parser("retry", help="re-admit failed copies to the backlog (copy journal)")
    retry_parser.add_argument("--table-name", required=True, help="the stack's output CopyTableName")
    retry_parser.add_argument("--status", required=True, type=str.upper, choices=("FAILED",))
    retry_parser.add_argument("--since", type=datetime.fromisoformat, help="ISO time: failures since then")
    args = parser.parse_args(argv)

    if args.command == "retry":
        readmitted, without_plan = retry(
            table_name=args.table_name, since=args.since.timestamp() if args.since else 0.0
        )
        for entry_id in readmitted:
            print(entry_id)
        print(
            f"re-admitted {len(readmitted)} cop(ies) to the backlog; {len(without_plan)} failed entr(ies) hold no"
            " plan (console copies that never reached StartCopy: start them again with ops.cli start)"
        )
        for entry_id in without_plan:
            print(f"  no plan: {entry_id}")
        return 0
    if args.command in ("status", "list"):
        entries = journal_entries(
            table_name=args.table_name,
            image_set_id=getattr(args, "image_set_id", None),
            status=getattr(args, "status", None),
            since=args.since.timestamp() if getattr(args, "since", None) else 0.0,
        )
        for entry in entries:
            print(_journal_line(entry))
        print(f"{len(entries)} journal entr{'y' if len(entries) == 1 else 'ies'}")
        return 0
    if args.command == "resolve":
        into = tuple(args.accepted_into.split(":", 1)) if args.accepted_into else None
        if into is not None and (len(into) != 2 or not all(into)):
            parser.error("--accepted-into: expected IMAGE_SET_ID:VERSION")
        print(resolve(table_name=args.table_name, record_id=args.record_id, accepted_into=into))  # type: ignore[arg-type]
        return 0

    if args.command == "redrive":
        moved = redrive(queue_url=args.queue_url, admission_queue_url=args.admission_queue_url)
        print(f"moved {moved} event(s) to the admission queue")
        return 0
    copy_input: dict[str, Any] = {
        "datastoreId": args.datastore_id,
        "sourceImageSetId": args.source_image_set_id,
        "force": args.force,
        "promoteToPrimary": args.promote_to_primary,
    }
    for key in ("source_version_id", "destination_image_set_id", "destination_version_id", "copiable_attributes"):
        value = getattr(args, key)
        if value is not None:
            copy_input["".join(p.capitalize() if i else p for i, p in enumerate(key.split("_")))] = value
    print(start(state_machine_arn=args.state_machine_arn, copy_input=copy_input))
    return 0


if __name__ == "__main__":
    sys.exit(main())
