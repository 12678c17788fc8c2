"""Operator CLI for a deployed pipeline: start a copy, redrive dead-lettered events, read and re-admit the journal,
check the account against what the design assumes (doctor).

    healthimaging-copy start --source-image-set-id ID [--destination-image-set-id ID]
                             [--copiable-attributes JSON] [--force] [--promote-to-primary]
    healthimaging-copy redrive [--queue admission|completion]
    healthimaging-copy doctor [--canary IMAGE_SET_ID]
    healthimaging-copy resolve --record-id copy#... (--not-accepted | --accepted-into ID:VERSION)
    healthimaging-copy status IMAGE_SET_ID
    healthimaging-copy list --status failed [--since 2026-11-01T00:00:00Z]
    healthimaging-copy retry --status failed [--since 2026-11-01T00:00:00Z] [--lane live|bulk]
    healthimaging-copy backfill start (--created-after ISO [--created-before ISO] | --study-instance-uid UID ...
                                       | --everything) [--id NAME]
    healthimaging-copy backfill stop|resume|status --id NAME [--watch]

Each command finds the names it takes (state machines, table, queues, data store) in the outputs of the stack
`--stack NAME[/PATH]` names (ops/stack_outputs.py; default $HEALTHIMAGING_COPY_STACK, else HealthImagingCopy), in
the account and Region of the usual AWS configuration (AWS_PROFILE, AWS_REGION); `--table-name`, ... give a name
directly. The console script of the installed package; in a clone, `python -m ops.cli` (make setup puts
`healthimaging-copy` into .venv/bin). `start` uses the same input contract as the console (docs/operations.md,
"Starting a copy by hand"). Execution names are derived from the input, so starting the same thing twice while it
runs, or after it succeeded, returns that execution; a copy whose last execution FAILED, TIMED_OUT or ABORTED is
started anew (the copy record still keeps an accepted copy from being repeated).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from . import canary, doctor
from .stack_outputs import (
    ADMISSION_QUEUE,
    ALARM_TOPIC,
    BACKFILL_STATE_MACHINE,
    COMPLETION_DEAD_LETTER_QUEUE,
    COMPLETION_QUEUE,
    DATASTORE,
    DEAD_LETTER_QUEUE,
    FUNCTION,
    STATE_MACHINE,
    TABLE,
    StackName,
    StackNamesError,
    add_stack_options,
    names_of,
)

NAME_UNSAFE = re.compile(r"[^0-9A-Za-z_-]")


def function_module(name: str) -> ModuleType:
    """The function's own module `copier.<name>` (ops/__init__.py puts its source on the path): every journal,
    copy record and backfill read and write is the function's code. Looked up at each call: the local runner
    and the tests import the function afresh."""
    return importlib.import_module(f"copier.{name}")


def execution_name(prefix: str, payload: dict[str, Any]) -> str:
    """A name Step Functions accepts (80 chars, [0-9A-Za-z_-]) that is the same for the same input."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]
    return NAME_UNSAFE.sub("-", f"{prefix}-{digest}")[:80]


ENDED_WITHOUT_SUCCESS = ("FAILED", "TIMED_OUT", "ABORTED")
MAX_RESTARTS = 99


def start(*, state_machine_arn: str, copy_input: dict[str, Any], client: Any = None, prefix: str = "console") -> str:
    """The execution of this copy: the running or succeeded one, or a new one (named `<prefix>-<digest>`)."""
    sfn = client or boto3.client("stepfunctions")
    base = execution_name(prefix, copy_input)
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


# HealthImaging's copy outcome events (copier.wake.COPY_OUTCOMES): the completion queue's, never the admission queue's.
COPY_OUTCOMES = ("Image Set Copied", "Image Set Copy Failed")


def redrive(*, queue_url: str, admission_queue_url: str | None = None, completion_queue_url: str | None = None) -> int:
    """Move dead-lettered events from `queue_url` back to the queue they were meant for, named by which is given:
    the admission queue (import events: admission is idempotent, an event twice is one journal entry) or the
    completion queue (copy outcome events: a wake-up is idempotent too). A copy outcome event never goes to the
    admission queue (the pipeline's own copies announce themselves with it: admitted, it would be copied again, a
    copy storm), nor anything else to the completion queue: those stay in the dead-letter queue. A message is
    deleted only once sent. Returns how many moved."""
    if (admission_queue_url is None) == (completion_queue_url is None):
        raise ValueError("redrive: give the admission queue or the completion queue, one of them")
    to_completion = completion_queue_url is not None
    target = str(completion_queue_url if to_completion else admission_queue_url)
    sqs = boto3.client("sqs")
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            return moved
        for message in messages:
            if _is_copy_outcome(message["Body"]) != to_completion:
                continue  # left where it is: visible again after the visibility timeout, for a person to look at
            sqs.send_message(QueueUrl=target, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def _is_copy_outcome(body: str) -> bool:
    try:
        event = json.loads(body)
    except json.JSONDecodeError:
        return False
    return isinstance(event, dict) and event.get("detail-type") in COPY_OUTCOMES


def resolve(*, table_name: str, record_id: str, accepted_into: tuple[str, str] | None) -> str:
    """Settle a copy record ConfirmCopy could not decide (CopyOutcomeUndecided), after looking:
    accepted into that image set version (adopted and claimed, as ConfirmCopy would), or not accepted (the
    next start calls CopyImageSet again). Only a record still waiting for confirmation (CALLING) changes."""
    copy_record, errors = function_module("copy_record"), function_module("errors")
    with function_module("settings").operating_on(table_name):
        record = copy_record.by_id(record_id)
        if record is None or record.status != copy_record.CopyStatus.CALLING:
            raise SystemExit(f"{record_id} was not changed: it is not waiting for confirmation")
        try:
            if accepted_into is None:
                copy_record.mark_not_accepted(record)
            else:
                copy_record.adopt(
                    record, destination_image_set_id=accepted_into[0], destination_version_id=accepted_into[1]
                )
        except errors.CopyRecordChanged as error:
            raise SystemExit(f"{record_id} was not changed: {error}") from None
    return "NOT_ACCEPTED" if accepted_into is None else "ACCEPTED"


JOURNAL_COLUMNS = (
    "journalSourceId", "sourceVersionId", "journalStatus", "lane", "decision", "reason", "copiedIntoImageSetId",
    "copiedIntoVersionId", "forced", "forcePolicy", "forceDecision", "inconsistentElements", "error",
    "executionId", "dispatches", "updatedAt",
)  # fmt: skip


def journal_entries(
    *, table_name: str, image_set_id: str | None = None, status: str | None = None, since: float = 0.0
) -> list[dict[str, Any]]:
    """Journal entries of one image set (every version), or in one status changed since a time, oldest first."""
    journal = function_module("journal")
    with function_module("settings").operating_on(table_name):
        entries: list[dict[str, Any]] = journal.entries(
            image_set_id=image_set_id, status=journal.JournalStatus(status) if status else None, since=since
        )
    return entries


def _journal_line(entry: dict[str, Any]) -> str:
    values = []
    for column in JOURNAL_COLUMNS:
        # An entry of 0.2.0 names no lane: it is read as the dispatcher reads it.
        value = function_module("journal").lane_of(entry).value if column == "lane" else entry.get(column)
        if value is None:
            continue
        if column == "updatedAt":
            value = datetime.fromtimestamp(float(value), tz=UTC).isoformat(timespec="seconds")
        elif isinstance(value, list):
            value = ",".join(str(v) for v in value) or "-"
        values.append(f"{column}={value}")
    return " ".join(values)


# A retry of more live entries than this re-admits them into the bulk lane, unless --lane live says otherwise:
# 100 copies are 7 minutes of the default quota (0.24 a second) that new imports would wait behind.
LARGE_RETRY = 100


@dataclass(frozen=True)
class Retried:
    lanes: dict[str, list[str]]  # lane -> the entries re-admitted into it
    without_plan: list[str]  # FAILED entries that hold no plan: console copies that never reached StartCopy
    large: bool  # more than LARGE_RETRY live entries, re-admitted into the bulk lane

    @property
    def readmitted(self) -> list[str]:
        return [entry_id for entries in self.lanes.values() for entry_id in entries]


def retry(*, table_name: str, since: float = 0.0, lane: str | None = None) -> Retried:
    """Re-admit every copy whose journal entry is FAILED (changed since a time) to the backlog, with the plan it
    was admitted with: the dispatcher starts it at the quota's pace, under a new execution name, and the copy
    records keep an accepted copy from being repeated. Into `lane` if given, else each entry's own lane, except
    that a large retry (more than LARGE_RETRY live entries) goes to the bulk lane: thousands of old failures
    must not hold new imports behind them. Running it twice re-admits nothing twice: only FAILED entries move."""
    journal = function_module("journal")
    lanes: dict[str, list[str]] = {value.value: [] for value in journal.Lane}
    with function_module("settings").operating_on(table_name):
        failed = journal.entries(status=journal.JournalStatus.FAILED, since=since)
        planned = [entry for entry in failed if entry.get("plan")]
        large = lane is None and sum(journal.lane_of(e) is journal.Lane.LIVE for e in planned) > LARGE_RETRY
        for entry in planned:
            chosen = journal.Lane(lane) if lane else journal.Lane.BULK if large else journal.lane_of(entry)
            if journal.readmit(entry, chosen):
                lanes[chosen.value].append(entry["id"])
    return Retried(lanes, [entry["id"] for entry in failed if not entry.get("plan")], large)


# --- backfill (lambda/copier/backfill.py: the progress item and the execution names) ---------------------------
BACKFILL_ID = re.compile(r"^[0-9A-Za-z_-]{1,40}$")
BAR_WIDTH = 30


def _execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def backfill_progress(*, table_name: str, backfill_id: str) -> dict[str, Any] | None:
    with function_module("settings").operating_on(table_name):
        progress: dict[str, Any] | None = function_module("backfill").read_progress(backfill_id)
    return progress


def backfill_start(
    *, state_machine_arn: str, table_name: str, backfill_id: str, filters: dict[str, Any], client: Any = None
) -> str:
    """Start a new backfill (its first execution); a backfill that exists is resumed, not started again."""
    if not BACKFILL_ID.fullmatch(backfill_id):
        raise SystemExit("--id: 1 to 40 characters of [0-9A-Za-z_-]")
    if backfill_progress(table_name=table_name, backfill_id=backfill_id):
        raise SystemExit(
            f"backfill {backfill_id} exists: resume it (healthimaging-copy backfill resume), or choose another --id"
        )
    sfn = client or boto3.client("stepfunctions")
    try:
        answer = sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=function_module("backfill").execution_name(backfill_id, 0),
            input=json.dumps({"backfillId": backfill_id, "filters": filters}),
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
        raise SystemExit(f"backfill {backfill_id} was started already (with other filters)") from None
    return str(answer["executionArn"])


def backfill_stop(*, state_machine_arn: str, table_name: str, backfill_id: str, client: Any = None) -> str:
    """Mark the backfill STOPPED (its page in flight finishes, its cursor stays where that page began) and stop
    the execution that runs it. Returns that execution's name."""
    with function_module("settings").operating_on(table_name):
        name = function_module("backfill").stop(backfill_id)
    if name is None:
        raise SystemExit(f"backfill {backfill_id} is not running")
    sfn = client or boto3.client("stepfunctions")
    try:
        sfn.stop_execution(
            executionArn=_execution_arn(state_machine_arn, name), cause="stopped by healthimaging-copy backfill stop"
        )
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("ExecutionDoesNotExist", "ValidationException"):
            raise
    return str(name)


def backfill_resume(*, state_machine_arn: str, table_name: str, backfill_id: str, client: Any = None) -> str:
    """Start the backfill again from its saved cursor, as its next execution (which owns it from then on): a
    stopped one, or one whose execution ended without finishing (failed, timed out, aborted)."""
    progress = backfill_progress(table_name=table_name, backfill_id=backfill_id)
    if progress is None or "executionName" not in progress:
        raise SystemExit(f"backfill {backfill_id} has not started its first page: nothing to resume")
    state, current = progress["backfillState"], str(progress["executionName"])
    sfn = client or boto3.client("stepfunctions")
    if state == "DONE":
        raise SystemExit(f"backfill {backfill_id} is done")
    if state == "RUNNING":
        try:
            status = sfn.describe_execution(executionArn=_execution_arn(state_machine_arn, current))["status"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionDoesNotExist":
                raise
            status = "NONE"  # a handed-over execution that never started
        if status in ("RUNNING", "SUCCEEDED"):
            raise SystemExit(f"backfill {backfill_id} is running ({current})")
    with function_module("settings").operating_on(table_name):
        name = function_module("backfill").hand_over(backfill_id, progress)
    if name is None:
        raise SystemExit(f"backfill {backfill_id} changed meanwhile: look at its status again")
    answer = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=name,
        input=json.dumps({"backfillId": backfill_id, "filters": json.loads(progress["filters"])}),
    )
    return str(answer["executionArn"])


def backfill_line(backfill_id: str, progress: dict[str, Any] | None) -> str:
    """One line: `backfill ID [####....] 52% admitted 5,200 copied 4,900 failed 3 remaining 297 in the bulk lane
    (RUNNING)`. Admitted: journal entries the backfill created; copied and failed: of those, now; remaining:
    still waiting for the dispatcher (in the backlog's bulk lane, behind no new import: an import event for one
    of them promotes it to the live lane) or being copied; the percentage is of the admitted ones, settled."""
    if progress is None:
        return f"backfill {backfill_id}: not started yet (its first page has not run)"

    def count(name: str) -> int:
        return int(progress.get(name, 0))

    admitted = count("admitted")
    copied = count("entriesCOPIED") + count("entriesFORCED")
    failed = count("entriesFAILED")
    remaining = count("entriesPENDING") + count("entriesSTARTED")
    settled = copied + failed
    share = settled / admitted if admitted else (1.0 if progress.get("backfillState") == "DONE" else 0.0)
    filled = round(share * BAR_WIDTH)
    state = progress.get("backfillState", "?")
    searching = "" if state == "DONE" else f", searching: {count('seen'):,} image sets seen"
    return (
        f"backfill {backfill_id} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%} admitted {admitted:,}"
        f" copied {copied:,} failed {failed:,} remaining {remaining:,} in the bulk lane ({state}{searching})"
    )


def backfill_filters(args: argparse.Namespace) -> dict[str, Any]:
    if args.everything:
        return {"everything": True}
    if args.study_instance_uid:
        return {"studyInstanceUids": args.study_instance_uid}
    return {
        name: value.isoformat()
        for name, value in (("createdAfter", args.created_after), ("createdBefore", args.created_before))
        if value is not None
    }


# --- the command line -------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """Every command, each with `--stack` and the options of the names it takes (ops/stack_outputs.py)."""
    # No abbreviated options: a script's `--table` must not start meaning another option when one is added.
    parser = argparse.ArgumentParser(prog="healthimaging-copy", description=__doc__.splitlines()[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str, *names: StackName, within: Any = commands) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = within.add_parser(name, help=text, description=text, allow_abbrev=False)
        add_stack_options(sub, *names)
        sub.set_defaults(names=names)
        return sub

    start_parser = command("start", "start one copy", STATE_MACHINE, DATASTORE)
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
    redrive_parser = command(
        "redrive",
        "move dead-lettered events back to the queue they were meant for",
        *(name for pair in REDRIVE_NAMES.values() for name in pair),
    )
    redrive_parser.add_argument(
        "--queue",
        choices=tuple(REDRIVE_NAMES),
        default="admission",
        help="which dead-letter queue: the admission queue's (import events; the default) or the completion"
        " queue's (copy outcome events); each kind goes back to its own queue only",
    )
    doctor_parser = command(
        "doctor",
        "check what the design assumes against the account: quotas, Lambda concurrency, rules, dead letters,"
        " the alarm topic, the last day's metrics; exit status 1 on a finding",
        *DOCTOR_NAMES,
    )
    doctor_parser.add_argument(
        "--canary",
        metavar="IMAGE_SET_ID",
        help="also make one snapshot copy of this image set (a new image set) and report its completion events",
    )
    resolve_parser = command("resolve", "settle a copy ConfirmCopy could not decide", TABLE)
    resolve_parser.add_argument("--record-id", required=True, help="copy#..., named in the CopyOutcomeUndecided cause")
    outcome = resolve_parser.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--not-accepted", action="store_true", help="no image set holds the copy")
    outcome.add_argument("--accepted-into", metavar="IMAGE_SET_ID:VERSION", help="the version that holds the copy")
    status_parser = command("status", "the copy journal of one image set, every version", TABLE)
    status_parser.add_argument("image_set_id")
    list_parser = command("list", "copy journal entries in one status", TABLE)
    statuses = [status.value for status in function_module("journal").JournalStatus]
    list_parser.add_argument("--status", required=True, type=str.upper, choices=statuses)
    list_parser.add_argument("--since", type=datetime.fromisoformat, help="ISO time: entries changed since then")
    retry_parser = command("retry", "re-admit failed copies to the backlog (copy journal)", TABLE)
    retry_parser.add_argument("--status", required=True, type=str.upper, choices=("FAILED",))
    retry_parser.add_argument("--since", type=datetime.fromisoformat, help="ISO time: failures since then")
    retry_parser.add_argument(
        "--lane",
        choices=("live", "bulk"),
        help=f"the backlog lane to re-admit into (default: each entry's own; more than {LARGE_RETRY} live: bulk)",
    )

    backfill = commands.add_parser(
        "backfill", help="copy image sets that already exist (at the quota's pace)", allow_abbrev=False
    )
    actions = backfill.add_subparsers(dest="backfill_command", required=True)
    for action, text in (
        ("start", "start a backfill"),
        ("stop", "stop a backfill (resume it later)"),
        ("resume", "resume a stopped (or failed) backfill from its last page"),
        ("status", "a backfill's progress"),
    ):
        names = (TABLE,) if action == "status" else (BACKFILL_STATE_MACHINE, TABLE)
        sub = command(action, text, *names, within=actions)
        if action == "start":
            sub.add_argument("--id", help="a name for it, [0-9A-Za-z_-], 40 characters at most (default: the time)")
            sub.add_argument("--created-after", type=datetime.fromisoformat, help="ISO time, with a zone")
            sub.add_argument("--created-before", type=datetime.fromisoformat, help="ISO time (default: now)")
            sub.add_argument("--study-instance-uid", action="append", help="repeat for several studies")
            sub.add_argument("--everything", action="store_true", help="every image set of the data store")
        else:
            sub.add_argument("--id", required=True)
        if action == "status":
            sub.add_argument("--watch", action="store_true", help="refresh until done or stopped")
            sub.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes")
    return parser


# redrive --queue: the dead-letter queue, and the queue its events go back to.
REDRIVE_NAMES = {
    "admission": (DEAD_LETTER_QUEUE, ADMISSION_QUEUE),
    "completion": (COMPLETION_DEAD_LETTER_QUEUE, COMPLETION_QUEUE),
}
DOCTOR_NAMES = (
    FUNCTION,
    TABLE,
    STATE_MACHINE,
    ADMISSION_QUEUE,
    DEAD_LETTER_QUEUE,
    COMPLETION_DEAD_LETTER_QUEUE,
    ALARM_TOPIC,
)


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """What the parser cannot say itself, before any AWS call (tests/test_doc_commands.py runs it on the docs)."""
    if args.command == "redrive":
        # Only the chosen queue's names: never an admission dead letter into the completion queue, or back.
        for other in (queue for queue in REDRIVE_NAMES if queue != args.queue):
            for given in REDRIVE_NAMES[other]:
                if getattr(args, given.dest):
                    parser.error(f"{given.option} is the {other} queue's: with --queue {args.queue}, give its own")
        args.names = REDRIVE_NAMES[args.queue]
    if args.command == "resolve" and args.accepted_into is not None:
        image_set_id, _, version = args.accepted_into.partition(":")
        if not image_set_id or not version:
            parser.error("--accepted-into: expected IMAGE_SET_ID:VERSION")
    if args.command == "backfill" and args.backfill_command == "start":
        ranged = bool(args.created_after or args.created_before)
        if sum((bool(args.everything), bool(args.study_instance_uid), ranged)) != 1:
            parser.error("backfill start: give exactly one of a createdAt range, --study-instance-uid, --everything")
        for name in ("created_after", "created_before"):
            value = getattr(args, name)
            if value is not None and value.tzinfo is None:
                parser.error(f"--{name.replace('_', '-')}: give a time zone (e.g. 2026-01-01T00:00:00Z)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check(args, parser)
    try:
        names = names_of(args, args.names, client_factory=_cloudformation)
        return run(args, names)
    except StackNamesError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    except (NoRegionError, NoCredentialsError) as error:
        parser.exit(
            2, f"{parser.prog}: {str(error).rstrip('.')}: AWS_PROFILE and AWS_REGION choose the account and Region\n"
        )


def _cloudformation() -> Any:
    return boto3.client("cloudformation")


def run(args: argparse.Namespace, names: dict[StackName, str]) -> int:
    if args.command == "backfill":
        return _backfill(args, names)
    if args.command == "retry":
        retried = retry(table_name=names[TABLE], since=args.since.timestamp() if args.since else 0.0, lane=args.lane)
        for lane, entry_ids in retried.lanes.items():
            for entry_id in entry_ids:
                print(f"{entry_id} lane={lane}")
        per_lane = ", ".join(f"{len(ids)} into the {lane} lane" for lane, ids in retried.lanes.items())
        print(
            f"re-admitted {len(retried.readmitted)} cop(ies) to the backlog: {per_lane}; {len(retried.without_plan)}"
            " failed entr(ies) hold no plan (console copies that never reached StartCopy: start them again with"
            " healthimaging-copy start)"
        )
        if retried.large:
            print(
                f"  a large retry (more than {LARGE_RETRY} live entries) goes to the bulk lane, behind no new"
                " import: --lane live to re-admit them as new imports"
            )
        for entry_id in retried.without_plan:
            print(f"  no plan: {entry_id}")
        return 0
    if args.command in ("status", "list"):
        entries = journal_entries(
            table_name=names[TABLE],
            image_set_id=getattr(args, "image_set_id", None),
            status=getattr(args, "status", None),
            since=args.since.timestamp() if getattr(args, "since", None) else 0.0,
        )
        for entry in entries:
            print(_journal_line(entry))
        print(f"{len(entries)} journal entr{'y' if len(entries) == 1 else 'ies'}")
        return 0
    if args.command == "resolve":
        into = None
        if args.accepted_into:
            image_set_id, _, version = args.accepted_into.partition(":")
            into = (image_set_id, version)
        print(resolve(table_name=names[TABLE], record_id=args.record_id, accepted_into=into))
        return 0
    if args.command == "redrive":
        dead_letters, target = (names[name] for name in REDRIVE_NAMES[args.queue])
        moved = redrive(queue_url=dead_letters, **{f"{args.queue}_queue_url": target})
        print(f"moved {moved} event(s) to the {args.queue} queue")
        left = boto3.client("sqs").get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["All"])["Attributes"]
        held = sum(int(left.get(f"ApproximateNumberOf{kind}", 0)) for kind in ("Messages", "MessagesNotVisible"))
        if held:
            other = "copy outcome events" if args.queue == "admission" else "not copy outcome events"
            print(f"about {held} left in the dead-letter queue ({other}, or arrived meanwhile): look at them")
        return 0
    if args.command == "doctor":
        return _doctor(args, names)
    copy_input: dict[str, Any] = {
        "datastoreId": names[DATASTORE],
        "sourceImageSetId": args.source_image_set_id,
        "force": args.force,
        "promoteToPrimary": args.promote_to_primary,
    }
    for key in ("source_version_id", "destination_image_set_id", "destination_version_id", "copiable_attributes"):
        value = getattr(args, key)
        if value is not None:
            copy_input["".join(p.capitalize() if i else p for i, p in enumerate(key.split("_")))] = value
    print(start(state_machine_arn=names[STATE_MACHINE], copy_input=copy_input))
    return 0


def _doctor(args: argparse.Namespace, names: dict[StackName, str]) -> int:
    """Each check's line; 1 if any is a finding."""
    deployment = doctor.Deployment(
        function_name=names[FUNCTION],
        table_name=names[TABLE],
        state_machine_arn=names[STATE_MACHINE],
        admission_queue_url=names[ADMISSION_QUEUE],
        dead_letter_queue_url=names[DEAD_LETTER_QUEUE],
        completion_dead_letter_queue_url=names[COMPLETION_DEAD_LETTER_QUEUE],
        alarm_topic_arn=names[ALARM_TOPIC],
    )
    clients = boto3.client
    function = doctor.read_function(clients, deployment, function_module("settings").Settings)
    lines = list(doctor.examine(clients, deployment, function))
    for line in lines:
        print(line, flush=True)
    if args.canary:
        print(f"canary: copying {args.canary} (a new image set), then watching its events", flush=True)
        try:
            canary_lines = canary.canary(
                clients,
                deployment,
                function,
                args.canary,
                start_copy=lambda copy_input: start(
                    state_machine_arn=deployment.state_machine_arn, copy_input=copy_input, prefix="canary"
                ),
                waiting=canary.Waiting(now=time.time, sleep=time.sleep),
            )
        except ClientError as error:
            canary_lines = [doctor.unchecked("canary", error)]
        for line in canary_lines:
            print(line)
        lines += canary_lines
    return 1 if any(line.verdict is doctor.Verdict.FINDING for line in lines) else 0


def _backfill(args: argparse.Namespace, names: dict[StackName, str]) -> int:
    table_name = names[TABLE]
    if args.backfill_command == "start":
        backfill_id = args.id or datetime.now(tz=UTC).strftime("backfill-%Y%m%dT%H%M%S")
        arn = backfill_start(
            state_machine_arn=names[BACKFILL_STATE_MACHINE],
            table_name=table_name,
            backfill_id=backfill_id,
            filters=backfill_filters(args),
        )
        print(f"backfill {backfill_id} started: {arn}")
        return 0
    if args.backfill_command == "stop":
        name = backfill_stop(
            state_machine_arn=names[BACKFILL_STATE_MACHINE], table_name=table_name, backfill_id=args.id
        )
        print(f"backfill {args.id} stopped ({name}); resume it with healthimaging-copy backfill resume --id {args.id}")
        return 0
    if args.backfill_command == "resume":
        arn = backfill_resume(
            state_machine_arn=names[BACKFILL_STATE_MACHINE], table_name=table_name, backfill_id=args.id
        )
        print(f"backfill {args.id} resumed: {arn}")
        return 0
    while True:
        progress = backfill_progress(table_name=table_name, backfill_id=args.id)
        line = backfill_line(args.id, progress)
        if not args.watch:
            print(line)
            return 0
        print(f"\r{line}", end="", flush=True)
        state = (progress or {}).get("backfillState")
        remaining = sum(int((progress or {}).get(f"entries{s}", 0)) for s in ("PENDING", "STARTED"))
        if state == "STOPPED" or (state == "DONE" and remaining == 0):
            print()
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
