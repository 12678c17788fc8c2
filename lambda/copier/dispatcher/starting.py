"""A dispatcher run's starts: each planned entry's execution on its slot, a few at a time and at most
START_RATE a second, then the entries marked STARTED. Execution names are the entry's image set version and
dispatch count: a name already used is adopted while its execution runs, and given up for the next one once
it ended."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import ClientError

from copier import clock, journal, pacing
from copier.journal import JournalStatus

# StartExecution a second, and at once: two thirds of the smallest Regions' refill (Step Functions quotas,
# API action throttling: StartExecution bucket 800, refill 150/s outside us-east-1, us-west-2, eu-west-1),
# the rest left to copies started by hand, the backfill workflow and the account's other state machines.
START_RATE = 100.0
START_WORKERS = 8
# Starts stop after this long: the function times out at 60 s (infra/copy_function.py).
RUN_BUDGET_SECONDS = 45.0
# An execution's input holds the plan, unless it is this large (a subset copy's copiableAttributes):
# then the execution reads the plan from the journal (ValidateInput). Step Functions takes 256 KiB.
MAX_INPUT_CHARS = 200_000
STILL_RUNNING = ("RUNNING", "PENDING_REDRIVE")


@lru_cache(maxsize=1)
def step_functions() -> Any:
    return boto3.client("stepfunctions")


def execution_name(entry: dict[str, Any]) -> str:
    """Readable in the console, unique per dispatch of one image set version: `<id>-<version>-d<n>`."""
    return f"{entry['journalSourceId']}-{entry['sourceVersionId']}-d{int(entry.get('dispatches', 0))}"


def start_all(entries: list[dict[str, Any]], slots: list[float], state_machine_arn: str) -> list[str]:
    """Start each entry's execution on its slot, a few at a time, then mark the entries STARTED (a transaction
    per hundred); the names of those started, in order."""
    pacer = clock.Pacer(START_RATE, RUN_BUDGET_SECONDS)  # the account's StartExecution quota counts real seconds

    def start(pair: tuple[dict[str, Any], float]) -> tuple[dict[str, Any], str, float] | None:
        entry, slot = pair
        if not pacer.turn():
            return None
        execution_arn = _start(entry, slot, state_machine_arn)
        return None if execution_arn is None else (entry, execution_arn, slot)

    with ThreadPoolExecutor(max_workers=START_WORKERS) as pool:
        started = [found for found in pool.map(start, zip(entries, slots, strict=True)) if found]
    journal.mark_started(started)
    return [execution_name(entry) for entry, _, _ in started]


def execution_input(entry: dict[str, Any], slot: float) -> dict[str, Any]:
    """What the execution starts with: the entry's version, its plan and its slot (RouteCopy sends such an
    input straight to WaitForCopySlot); without a plan to hand, the version alone (ValidateInput reads it)."""
    admitted = {"sourceImageSetId": str(entry["journalSourceId"]), "sourceVersionId": str(entry["sourceVersionId"])}
    plan = journal.planned(entry)
    if plan is None or plan.request is None or plan.skip:
        return {"admitted": admitted}
    copy_slot = pacing.CopySlot(
        at=slot, wait_seconds=pacing.wait_seconds(slot, clock.now()), reservations=0, planned=True
    )
    document = {"admitted": admitted, **plan.wire(), "slot": copy_slot.wire()}
    return document if len(json.dumps(document)) <= MAX_INPUT_CHARS else {"admitted": admitted}


def _start(entry: dict[str, Any], slot: float, state_machine_arn: str) -> str | None:
    """Start the entry's copy: its execution's ARN; None when its name was used by a run that ended (the entry
    waits for the next run, under the next name)."""
    name = execution_name(entry)
    try:
        answer = step_functions().start_execution(
            stateMachineArn=state_machine_arn,
            name=name,
            input=json.dumps(execution_input(entry, slot), sort_keys=True),
        )
        execution_arn = str(answer["executionArn"])
    except ClientError as error:
        if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
        return _name_in_use(entry, name, state_machine_arn)
    return execution_arn


def _name_in_use(entry: dict[str, Any], name: str, state_machine_arn: str) -> str | None:
    """StartExecution refused the name (the same name and input while running is not an error): a run died
    between starting it and marking the entry (its input had another slot), or a dispatcher of another version
    started it, mid-upgrade. One that runs (or waits for its redrive) copies this entry: its ARN, taken as
    started. One that ended, with the entry still PENDING (even one that succeeded: its journal write was lost),
    ends nothing here: the next run starts the entry under a new name, which records its outcome, and its copy
    record keeps it one copy."""
    image_set_id, version = str(entry["journalSourceId"]), str(entry["sourceVersionId"])
    execution_arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"
    status = step_functions().describe_execution(executionArn=execution_arn)["status"]
    if status in STILL_RUNNING:
        return execution_arn
    journal.record(
        image_set_id,
        version,
        JournalStatus.PENDING,
        only_from=(JournalStatus.PENDING,),
        lane=journal.lane_of(entry),
        dispatches=int(entry.get("dispatches", 0)) + 1,
    )
    return None
