"""The paced dispatcher (action `dispatch`, run every minute by a schedule rule, and at once by the
admission queue's consumer when nothing is planned): starts the backlog's oldest copies, as many as the
CopyImageSet schedule and the data store's concurrent copies have room for until just past its next run.

The backlog is the copy journal's PENDING entries (events from the admission queue, reconciliation,
backfill, `ops.cli retry`), durable for as long as they take. A run:

1. takes the lease on the pacing item (one run at a time; its answer is the schedule: the last slot handed
   out, the adaptive pace and its counts, copies in flight as last counted); the first run after an upgrade
   from 0.1.0 also waits for a run of 0.1.0 still holding that release's lease, and deletes its item;
2. adapts the pace to the last period's pushbacks (copier.pacing.adapted: AIMD, for a quota shared with
   other clients of the account);
3. reads the oldest PENDING entries, as many as the pace can start before the next run (HORIZON_SECONDS);
4. gives each a slot (copier.admission.plan_starts) after the last one handed out, 1/pace apart, and a
   permit of the concurrent-copy quota: when the copies in flight could reach the quota, it counts them
   from the journal (a STARTED entry holds one from its slot until a copy's duration later, then is believed
   to land within seconds: an entry a crash left STARTED holds it no longer than a copy would) and measures
   how long a copy takes from the copies that landed since;
5. writes the block of slots on the pacing item (one conditional write for the whole run: a copy started
   by hand, or a call pushed back, reserves its own slot after them), and when the backlog's next copy is due
   (due_after: the backlog served at the rate the settings promise);
6. starts the executions, a few at a time and at most START_RATE a second (the account's StartExecution
   quota is shared: Step Functions' smallest Regions refill 150 a second), each with its plan and slot as
   input, marking each entry STARTED with its slot;
7. gives the lease back, and writes how late the backlog's oldest copy is (BacklogLateSeconds: how long it
   has waited beyond what the copies admitted before it explain, so that its alarm means trouble whatever the
   backlog's size: a 1M backfill is no later than one import).

So whatever the backlog's size or the quota, executions never wait near their timeout, a copy costs no
pacing write, copies in flight stay under the data store's quota, and a copy started by hand still gets a
slot within about a minute. Execution names are the entry's image set version and dispatch count, so a
run that dies between StartExecution and marking the entry STARTED starts nothing twice: the next run finds
the execution (ExecutionAlreadyExists), adopts it if it still runs (or waits for its redrive), and starts
the entry under the next name if it ended (even one that succeeded: the entry still PENDING says its journal
write was lost; the next execution meets the copy record and copies nothing twice).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from threading import Lock
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from copier import admission, clock, journal, pacing, table
from copier.errors import FunctionMisconfigured, TableUnavailable
from copier.journal import JournalStatus
from copier.settings import Settings, load_settings

logger = Logger(child=True)
metrics = Metrics()

PERIOD_SECONDS = 60  # infra/dispatcher.py's schedule
# A run takes seconds (a minute's starts at START_RATE: 34 s at 50 copies a second); the lease outlives a
# run that dies, and is given back when a run ends.
LEASE_SECONDS = 55
# A run plans past the next one by what an execution takes to reach its slot (StartExecution, a cold start)
# plus the lead: the schedule never idles between runs in a backlog.
START_MARGIN_SECONDS = 5
HORIZON_SECONDS = PERIOD_SECONDS + pacing.HOLD_LEAD_SECONDS + START_MARGIN_SECONDS
# StartExecution a second, and at once: two thirds of the smallest Regions' refill (Step Functions quotas,
# API action throttling: StartExecution bucket 800, refill 150/s outside us-east-1, us-west-2, eu-west-1),
# the rest left to copies started by hand, the backfill workflow and the account's other state machines.
START_RATE = 100.0
START_WORKERS = 8
# Starts stop after this long: the function times out at 60 s (infra/copy_function.py).
RUN_BUDGET_SECONDS = 45.0
# A copy's duration until one has been measured: it holds its permit past this run's plan.
UNMEASURED_COPY_SECONDS = float(HORIZON_SECONDS)
# Admission runs the dispatcher for newly admitted copies at most this often while the schedule ends before
# the next scheduled run.
CATCH_UP_SECONDS = 10.0
# A copy still STARTED after it should have landed is believed to land within this long (its event on the way).
OVERDUE_SECONDS = 10.0
# A measured duration is the longest of the copies that landed since the last count (a handful of them at
# least); fewer samples only raise it.
COPY_SECONDS_SAMPLES = 5
# Copies in flight are counted when the last count plus the starts since could reach this share of the quota.
COUNT_IN_FLIGHT_AT = 0.8
# An execution's input holds the plan, unless it is this large (a subset copy's copiableAttributes):
# then the execution reads the plan from the journal (ValidateInput). Step Functions takes 256 KiB.
MAX_INPUT_CHARS = 200_000
# STARTED entries unchanged this long have their executions looked at, a few a run (copies take minutes).
SETTLE_AFTER_SECONDS = 3_600
SETTLE_BATCH = 25
SETTLE_EVERY_SECONDS = 900  # a run settles ended executions once a quarter of an hour
ENDED_WITHOUT_A_WORD = ("FAILED", "TIMED_OUT", "ABORTED")
PLAN_ATTEMPTS = 3
ADDED_FIELDS = ("pushbacks", "handed")
STILL_RUNNING = ("RUNNING", "PENDING_REDRIVE")
PREVIOUS_RELEASE_SCHEDULE_KEY = "dispatcher#schedule"  # 0.1.0's lease and last planned slot


@dataclass(frozen=True)
class DispatchResult:
    started: list[str]  # names of the executions started
    oldest_pending_seconds: float  # the backlog's age after this run
    ran: bool = True  # False: another run held the lease


@lru_cache(maxsize=1)
def _step_functions() -> Any:
    return boto3.client("stepfunctions")


def execution_name(entry: dict[str, Any]) -> str:
    """Readable in the console, unique per dispatch of one image set version: `<id>-<version>-d<n>`."""
    return f"{entry['journalSourceId']}-{entry['sourceVersionId']}-d{int(entry.get('dispatches', 0))}"


def dispatch() -> DispatchResult:
    """One run: the schedule rule's every minute, or the admission queue's when the schedule is idle."""
    settings = load_settings()
    if not settings.state_machine_arn:
        raise FunctionMisconfigured("function settings are invalid: STATE_MACHINE_ARN")
    now = clock.now()
    lease_until = now + LEASE_SECONDS
    state = _take_lease(now, lease_until)
    if state is None:
        logger.info("Another dispatch run holds the lease: nothing to do")
        return DispatchResult([], _oldest_pending_seconds(now), ran=False)
    if "runAt" not in state and not _previous_release_schedule_ended(now):
        _give_back_lease(lease_until)
        logger.info("A dispatch run of the previous release holds its lease: nothing to do")
        return DispatchResult([], _oldest_pending_seconds(now), ran=False)
    try:
        settled = now - float(state.get("settledAt", 0)) >= SETTLE_EVERY_SECONDS
        if settled:
            _settle_ended_executions(now)
        pace, quiet_runs = pacing.adapted(state, settings.copy_rate_per_second)
        most = math.ceil(pace * HORIZON_SECONDS) + 1
        entries = journal.pending(most + 1)  # one more than can start: the backlog's age after this run
        plan = _planned(
            state, now, pace=pace, quiet_runs=quiet_runs, entries=entries[:most], settings=settings, settled=settled
        )
        _remember_planned({**state, **after_run(state, plan, pace=pace, quiet_runs=quiet_runs, now=now)})
        # The lease is held until the run's copies are marked STARTED: a run that counted the copies in flight
        # meanwhile would miss them and hand out permits the concurrent-copy quota does not have.
        started = _start_all(entries[: len(plan.slots)], plan.slots, settings.state_machine_arn)
    finally:
        _give_back_lease(lease_until)
    waiting = [entry for entry in entries if execution_name(entry) not in started]
    head = float(waiting[0]["updatedAt"]) if waiting else None
    oldest = 0.0 if head is None else max(0.0, clock.now() - head)
    late = lateness(plan.due, head, clock.now())
    metrics.add_metric(name="CopiesDispatched", unit=MetricUnit.Count, value=len(started))
    metrics.add_metric(name="OldestPendingAgeSeconds", unit=MetricUnit.Seconds, value=oldest)
    # Only runs write it, 0 with no backlog: DispatcherSilent counts them.
    metrics.add_metric(name="BacklogLateSeconds", unit=MetricUnit.Seconds, value=late)
    metrics.add_metric(name="CopyPace", unit=MetricUnit.CountPerSecond, value=pace)
    logger.info(
        "Dispatch run",
        extra={
            "slots": len(plan.slots),
            "started": len(started),
            "pace": pace,
            "oldestPending": oldest,
            "backlogLate": late,
        },
    )
    return DispatchResult(started, oldest)


@dataclass(frozen=True)
class Plan:
    slots: list[float]
    copy_seconds: float  # a copy's duration, as measured (or not yet)
    in_flight: int  # copies in flight or planned after this run, an upper bound
    counted: bool  # whether this run counted the copies in flight
    left: int = 0  # pending copies the plan had no slot or permit for
    due: float | None = None  # when the backlog's next copy is due (due_after), once a run has planned one


def _planned(
    state: dict[str, Any],
    now: float,
    *,
    pace: float,
    quiet_runs: int,
    entries: list[dict[str, Any]],
    settings: Settings,
    settled: bool,
) -> Plan:
    """This run's plan, written on the pacing item. A copy that reserved a slot meanwhile (started by hand,
    or pushed back) moved the schedule on: plan again after it."""
    for _ in range(PLAN_ATTEMPTS):
        plan = _plan(state, now, pace, entries, settings)
        rate = promised_rate(settings.copy_rate_per_second, settings.concurrent_copy_quota, plan.copy_seconds)
        admitted = [float(entry["updatedAt"]) for entry in entries[: len(plan.slots)]]
        plan = replace(plan, due=due_after(_float(state.get("dueAt")), admitted, rate))
        if _write_plan(state, plan, pace, quiet_runs, settled=settled):
            return plan
        state = table.get_item(pacing.PACING_KEY) or {}
    raise TableUnavailable("could not plan the run's slots: the schedule kept moving")


def _plan(state: dict[str, Any], now: float, pace: float, entries: list[dict[str, Any]], settings: Settings) -> Plan:
    return plan_run(
        state,
        now,
        pace=pace,
        pending=len(entries),
        capacity=settings.concurrent_copy_quota,
        started_slots=journal.started_slots,
        landed_since=journal.landed_since,
    )


def plan_run(
    state: Mapping[str, Any],
    now: float,
    *,
    pace: float,
    pending: int,
    capacity: int,
    started_slots: Callable[[], list[float]],
    landed_since: Callable[[float], list[float]],
) -> Plan:
    """The slots of this run's copies: after the last one handed out, 1/pace apart, within the concurrent-copy
    quota. The copies in flight are counted (`started_slots`: the STARTED entries' slots) only when the last
    count plus the starts since could reach COUNT_IN_FLIGHT_AT of it, and a copy's duration measured from the
    copies that landed since the last count (`landed_since`). A pure function of the pacing item (`state`)
    and the journal's answers: benchmarks/scale.py plans with it too."""
    first = pacing.next_slot(now, pacing.last_slot(dict(state)), pace)  # its lead covers the execution's start too
    copy_seconds = float(state.get("copySeconds", UNMEASURED_COPY_SECONDS))
    bound = int(state.get("inFlight", 0))
    wanted = admission.plan_starts(now, first, pending, pace, HORIZON_SECONDS)
    if bound + len(wanted) <= COUNT_IN_FLIGHT_AT * capacity:
        return Plan(wanted, copy_seconds, bound + len(wanted), counted=False, left=pending - len(wanted))
    slots_in_flight = started_slots()
    landed = landed_since(float(state.get("countedAt", now - SETTLE_AFTER_SECONDS)))
    if len(landed) >= COPY_SECONDS_SAMPLES:
        copy_seconds = max(landed)
    elif landed:
        copy_seconds = max(*landed, copy_seconds)
    # A copy lands copy_seconds after its slot. One overdue has most likely landed and is being looked at (its
    # event on the way): its permit is believed free a few seconds on. One slower than measured is refused over
    # the quota at worst (a new slot later), and the copies that land slower raise the measure for the next run.
    ends = (slot + copy_seconds for slot in slots_in_flight)
    busy = tuple(end if end >= now else now + OVERDUE_SECONDS for end in ends)
    permits = admission.Permits(capacity, busy, copy_seconds)
    slots = admission.plan_starts(now, first, pending, pace, HORIZON_SECONDS, permits=permits)
    return Plan(slots, copy_seconds, len(busy) + len(slots), counted=True, left=pending - len(slots))


def promised_rate(rate: float, capacity: int, copy_seconds: float) -> float:
    """The copies a second the settings promise: copyRatePerSecond, or the concurrent-copy quota over a copy's
    duration (as measured) when that is lower. The adaptive pace is not in it: a quota shared with another
    client for hours makes the backlog late, and its alarm says so."""
    return min(rate, capacity / copy_seconds)


def due_after(due: float | None, admitted: Iterable[float], rate: float) -> float | None:
    """When the backlog's next copy is due, after the run started copies admitted at these times (oldest
    first): the backlog served at `rate` (promised_rate) starts each copy once it is admitted and 1/rate after
    the one before it was due. `due`: the pacing item's `dueAt`, from the run before (None: no copy yet)."""
    for at in admitted:
        due = max(at, at if due is None else due) + 1.0 / rate
    return due


def lateness(due: float | None, head: float | None, now: float) -> float:
    """How long the backlog's oldest copy (admitted at `head`; None: no backlog) has waited beyond its due
    time: 0 while the backlog goes at the promised rate (a burst's last copy waits hours at 0.24/s and is not
    late), growing by a second a second while nothing starts (the dispatcher stopped, starts failing, permits
    held by copies that ended) or by the share of the rate another client takes."""
    if head is None:
        return 0.0
    return max(0.0, now - max(head, head if due is None else due))


def after_run(
    state: Mapping[str, Any], plan: Plan, *, pace: float, quiet_runs: int, now: float, settled: bool = False
) -> dict[str, Any]:
    """The pacing item's fields a run sets: its block of slots (the last one), the adapted pace, the copies in
    flight as far as it knows, when the backlog's next copy is due, when it last settled ended executions, and
    the counts it adapted the pace from
    taken off (pushbacks and slots handed out meanwhile stay for the next run)."""
    fields: dict[str, Any] = {
        "pace": pace,
        "quietRuns": quiet_runs,
        "copySeconds": plan.copy_seconds,
        "inFlight": plan.in_flight,
        "pushbacks": -int(state.get("pushbacks", 0)),  # added: an ADD, not a SET
        "handed": len(plan.slots) - int(state.get("handed", 0)),  # added too
    }
    if plan.counted:
        fields["countedAt"] = now
    if settled:
        fields["settledAt"] = now
    if plan.slots:
        fields["nextSlot"] = plan.slots[-1]
    if plan.due is not None:
        fields["dueAt"] = plan.due
    # Copies left for want of a slot or a permit are the next run's: no run at once before it (is_idle).
    fields["busyUntil"] = now + PERIOD_SECONDS if plan.left else now
    fields["runAt"] = now
    return fields


def _write_plan(state: dict[str, Any], plan: Plan, pace: float, quiet_runs: int, *, settled: bool) -> bool:
    """after_run's fields in one conditional write on the pacing item, on condition no slot was handed out since
    the lease's read; False when one was (a copy that reserved one meanwhile makes the run plan again)."""
    fields = after_run(state, plan, pace=pace, quiet_runs=quiet_runs, now=clock.now(), settled=settled)
    added = {name: fields.pop(name) for name in ADDED_FIELDS}
    values: dict[str, Any] = {f":{name}": _number(value) for name, value in {**fields, **added}.items()}
    assignments = [f"{name} = :{name}" for name in fields]
    condition: dict[str, Any] = {}
    if plan.slots:
        assignments.append("expiration = :expiration")
        values[":expiration"] = int(plan.slots[-1]) + 86_400
        previous = pacing.last_slot(state)
        if previous is None:
            condition = {"ConditionExpression": "attribute_not_exists(nextSlot)"}
        else:
            condition = {"ConditionExpression": "nextSlot = :previous"}
            values[":previous"] = _number(previous)
    written = table.call_if(
        "update_item",
        Key={"id": {"S": pacing.PACING_KEY}},
        UpdateExpression=f"SET {', '.join(assignments)} ADD " + ", ".join(f"{name} :{name}" for name in added),
        ExpressionAttributeValues=table.to_dynamodb(values),
        **condition,
    )
    return written is not None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _number(value: float | int) -> Decimal | int:
    return value if isinstance(value, int) else Decimal(repr(value))


class _StartPacer:
    """At most START_RATE StartExecution calls a second across the run's workers (real time: the account's
    quota counts real seconds)."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._next = clock.monotonic()
        self.deadline = self._next + RUN_BUDGET_SECONDS

    def turn(self) -> bool:
        """Wait for this start's turn; False once the run's budget is spent."""
        with self._lock:
            at, self._next = self._next, max(self._next, clock.monotonic()) + 1.0 / START_RATE
        if at > self.deadline:
            return False
        clock.pause(at - clock.monotonic())
        return True


def _start_all(entries: list[dict[str, Any]], slots: list[float], state_machine_arn: str) -> list[str]:
    """Start each entry's execution on its slot, a few at a time, then mark the entries STARTED (a transaction
    per hundred); the names of those started, in order."""
    pacer = _StartPacer()

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
        answer = _step_functions().start_execution(
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
    status = _step_functions().describe_execution(executionArn=execution_arn)["status"]
    if status in STILL_RUNNING:
        return execution_arn
    journal.record(
        image_set_id,
        version,
        JournalStatus.PENDING,
        only_from=(JournalStatus.PENDING,),
        dispatches=int(entry.get("dispatches", 0)) + 1,
    )
    return None


def _settle_ended_executions(now: float) -> None:
    """A STARTED entry whose execution ended without saying so (aborted by hand, timed out, failed before
    its first step) becomes FAILED, so that `ops.cli retry` finds it: nothing stays STARTED forever, nor
    holds a permit of the concurrent-copy quota."""
    for entry in journal.oldest(JournalStatus.STARTED, SETTLE_BATCH, changed_before=now - SETTLE_AFTER_SECONDS):
        arn = entry.get("executionId")
        if not arn:
            continue
        status = _step_functions().describe_execution(executionArn=arn)["status"]
        if status in ENDED_WITHOUT_A_WORD:
            journal.record(
                str(entry["journalSourceId"]),
                str(entry["sourceVersionId"]),
                JournalStatus.FAILED,
                only_from=(JournalStatus.STARTED,),
                error=f"Execution{status.title().replace('_', '')}",
            )
            logger.warning("Execution ended without recording its copy", extra={"execution": arn, "status": status})


# The schedule as this environment last saw it: while it says no run is needed, a burst's admission batches
# read the pacing item once, not once each (a newer schedule can only be busier).
_seen: dict[str, Any] = {}


def _remember_planned(state: Mapping[str, Any]) -> None:
    _seen.clear()
    _seen.update({name: state[name] for name in ("nextSlot", "busyUntil", "runAt") if name in state})


def busy_until(state: Mapping[str, Any] | None) -> float | None:
    """Until when the schedule is planned: its last slot, or the next run's, when the last run left copies."""
    if not state:
        return None
    times = [float(state[name]) for name in ("nextSlot", "busyUntil") if name in state]
    return max(times) if times else None


def wants_a_run(state: Mapping[str, Any] | None, now: float) -> bool:
    """Whether newly admitted copies should have a run now rather than wait for the next scheduled one: the
    schedule runs out within the start margin (nothing planned, or not for long), or it ends before the next
    scheduled run and the last run is CATCH_UP_SECONDS old (a burst's events arriving after the run that
    planned everything there was: their copies go on the schedule without a gap, a run every few seconds at most)."""
    until = busy_until(state)
    if until is None or until < now + START_MARGIN_SECONDS:
        return True
    ran = (state or {}).get("runAt")
    return ran is not None and until < float(ran) + PERIOD_SECONDS and now >= float(ran) + CATCH_UP_SECONDS


def is_idle() -> bool:
    """The admission queue's consumer dispatches at once when the schedule wants a run (wants_a_run) rather
    than leave new copies waiting up to a minute for the next scheduled one (the first copy of a burst, a
    quiet day's import, a burst's events arriving after the last run)."""
    if _seen and not wants_a_run(_seen, clock.now()):
        return False
    state = table.get_item(pacing.PACING_KEY) or {}
    _remember_planned(state)
    return wants_a_run(state, clock.now())


def _take_lease(now: float, until: float) -> dict[str, Any] | None:
    """The pacing item, leased to this run until `until`; None when another run holds it."""
    leased = table.call_if(
        "update_item",
        Key={"id": {"S": pacing.PACING_KEY}},
        UpdateExpression="SET leaseUntil = :until",
        ConditionExpression="attribute_not_exists(leaseUntil) OR leaseUntil <= :now",
        ExpressionAttributeValues=table.to_dynamodb({":now": Decimal(repr(now)), ":until": Decimal(repr(until))}),
        ReturnValues="ALL_NEW",
    )
    return None if leased is None else table.from_dynamodb(leased["Attributes"])


def _previous_release_schedule_ended(now: float) -> bool:
    """The previous release (0.1.0) leased its runs on an item of its own, `dispatcher#schedule`, beside the last
    slot it planned (`plannedUntil`: its executions reserve their own slots on the pacing item, after whatever
    this release's runs hand out, so no slot is shared and nothing else is left to read from it). Until a run of
    this release has run (no `runAt` on the pacing item), a run deletes that item, on condition that no run of
    0.1.0 still holds its lease (one under way at the deploy); False while one does."""
    deleted = table.call_if(
        "delete_item",
        Key={"id": {"S": PREVIOUS_RELEASE_SCHEDULE_KEY}},
        ConditionExpression="attribute_not_exists(leaseUntil) OR leaseUntil <= :now",
        ExpressionAttributeValues=table.to_dynamodb({":now": Decimal(repr(now))}),
    )
    return deleted is not None


def _give_back_lease(until: float) -> None:
    """This run's lease, unless it ran out and the next run took it: that one is the next run's to give back."""
    given_back = table.call_if(
        "update_item",
        Key={"id": {"S": pacing.PACING_KEY}},
        UpdateExpression="REMOVE leaseUntil",
        ConditionExpression="leaseUntil = :mine",
        ExpressionAttributeValues=table.to_dynamodb({":mine": Decimal(repr(until))}),
    )
    if given_back is None:
        logger.warning("The dispatch run outlasted its lease: another run holds it now")


def _oldest_pending_seconds(now: float) -> float:
    oldest = journal.oldest_pending_change()
    return 0.0 if oldest is None else max(0.0, now - oldest)
