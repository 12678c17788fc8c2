"""Drives moto's Step Functions interpreter: the synthesized state machine runs locally with the
real Lambda handler in process, DynamoDB from moto and the HealthImaging emulator, on a virtual clock.

What runs is read from the CDK app's template by offline/template.py, so it is what `cdk deploy`
would deploy. moto internals used (pinned in
requirements-dev.txt; tests/test_runner_internals.py fails loudly if they move):
- LambdaSimpleBackend.invoke: call the handler instead of echoing the payload;
- WaitFunction._wait_interval and the retrier's time.sleep: sleep on the virtual clock;
- ExecutionWorker._execution_logic: tell the clock when an execution ends;
- DynamoDBBackend.transact_write_items: moto deep-copies every table a transaction touches, to roll back
  (80 ms a transaction with 2,000 journal entries, growing with the table): the runner keeps a copy of the
  items the transaction names instead, and restores those;
- StateTaskServiceSfn._normalise_parameters: the `states:startExecution` integration (the backfill workflow
  starting its next execution) passes its parameters to boto3 as written in the ASL (`StateMachineArn`);
  Step Functions maps them to the API's names (`stateMachineArn`), moto does not;
- ExecutionWorker._get_evaluation_entrypoint: moto parses the definition again for every execution (a third
  of the CPU a copy costs here); the runner parses each definition once. The parsed program keeps no
  execution's state (that is in each execution's Environment), and our workflows have no Map or Parallel;
- boto_client_for, where the Lambda and Step Functions tasks call it: moto builds a new boto3 client for every
  task (~15% of a copy's CPU); the runner keeps one per service and region;
- Table.all_items, Table.sorted_items and Table.query: moto sorts the whole table, then every index query's
  matches, comparing DynamoType objects (each comparison converts both values again): with 10,000 image sets
  journaled, the dispatcher's queries alone took minutes. The runner sorts by the same converted values, once
  each (the same order, the same items), and not the whole table for a query, which orders its matches itself;
- (the function, not moto) copier.dispatcher.starting.START_WORKERS and copier.legacy_lanes.WORKERS are 1: moto's
  DynamoDB is not safe for calls from several threads of one invocation at once;
- jsonpath_ng's parse, where moto's paths call it: it builds a new parser (yacc tables) for every path of
  every state (~10%); the runner parses each path once (a parsed path keeps no state between finds);
- the callback pattern (AwaitCopy's `.waitForTaskToken`): CallbackEndpoint.wait sleeps on the virtual clock
  until SendTaskSuccess rings it (CallbackEndpoint.notify) or its timeout, and a token whose task ended is
  refused afterwards, as Step Functions refuses it (moto would accept it silently); execute_state's
  threading.Event, the real-time wait around every task, waits for the task itself instead (the virtual
  clock times it out); Timestamp._get_wait_seconds counts from the virtual clock, not datetime.now().
  SendTaskSuccess for a task that ended while its execution runs on: moto raises TaskTimedOut() or
  TaskDoesNotExist() without the message its exception class requires (a TypeError, answered as a 500); the
  runner raises them with one, as Step Functions answers.

HealthImaging's copy outcome events are delivered as EventBridge and the completion queue would deliver
them: the emulator announces each copy that lands (offline.emulator.copy_outcome_event), and the runner's
event bus (one thread, a participant of the virtual clock) settles the emulator when a copy is due to land
and hands each event to the function as a completion queue batch, `events.delay_seconds` later, dropped or
duplicated as `events` says (`EventDelivery`).

Where moto departs from Step Functions' semantics, the runner follows Step Functions:
- ErrorEqualsDecl._eval_body: a Catch or Retry on States.ALL takes any error in moto; in Step Functions it
  takes neither States.Runtime (a path or intrinsic function that fails on the state's data) nor
  States.DataLimitExceeded: those fail the execution ("Error handling in Step Functions", States.ALL).

And one moto internal is called, not patched: an execution's Environment.set_timed_out (`time_out`): Step
Functions times an execution out at its state machine's TimeoutSeconds, which moto counts in real time.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import heapq
import importlib
import io
import itertools
import json
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO
from unittest import mock

import boto3
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.exceptions import AWSError
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import table as dynamodb_table
from moto.stepfunctions.parser import models as sfn_models
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.state.exec import execute_state
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk,
    state_task_service_sfn,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackConsumerLeft, CallbackEndpoint
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client, json_path
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from offline.clock import Alarm, VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.template import WorkflowDefinition, resolve
from offline.wire import attach

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE = "healthimaging-copy-idempotency"
ADMISSION_BATCH = 10  # infra/queues.py's BATCH_SIZE (both event sources')
# What Step Functions answers SendTaskSuccess for a token whose task ended (moto raises these without a message).
STALE_TOKEN_ANSWERS = {
    "TaskTimedOut": "Task Timed Out: 'Provided task does not exist anymore'",
    "TaskDoesNotExist": "Task does not exist anymore",
}
STUCK_RUNS = 60  # drain_backlog's dispatcher runs that start nothing, with nothing running, before it gives up
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


@dataclass
class ExecutionRecord:
    name: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    events: list[dict[str, Any]] = field(default_factory=list)

    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if e["type"].endswith("StateEntered")]

    def task_failures(self) -> list[str]:
        """Error names of failed task attempts (retried or caught), in order."""
        names = []
        for event in self.events:
            details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails")
            if details:
                names.append(details.get("error", ""))
        return names

    @property
    def transitions(self) -> int:
        return len(self.states_entered())


@dataclass
class EventDelivery:
    """How the copy outcome events reach the function: after `delay_seconds` (EventBridge, then the completion
    queue's poller), `copies` times each (delivery is at least once), none of those `drop` says."""

    delay_seconds: float = 1.0
    copies: int = 1
    drop: Callable[[dict[str, Any]], bool] = field(default=lambda event: False)
    delivered: list[dict[str, Any]] = field(default_factory=list)  # in order, duplicates included
    dropped: list[dict[str, Any]] = field(default_factory=list)


class EventBus:
    """Work due at virtual times (the emulator settling when a copy lands, an event's delivery), done in
    time order on one thread that takes part in the virtual clock: the clock never jumps past it."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._due: list[tuple[float, int, Callable[[], object]]] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._alarm = Alarm()
        self._stopped = False
        self._asleep = False
        self._thread = threading.Thread(target=self._loop, name="event-bus", daemon=True)

    def start(self) -> None:
        self.clock.join()  # from the caller: the clock cannot jump before the bus sleeps
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self.clock.ring(self._alarm)
        self._thread.join()

    def caught_up(self, timeout: float = 60.0) -> None:
        """Block until the bus has done the work due by now (a test that moved the clock by hand)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                due = bool(self._due) and self._due[0][0] <= self.clock.now()
                if self._asleep and not due:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("the event bus did not catch up with the clock")
            time.sleep(0.002)

    def at(self, when: float, work: Callable[[], object]) -> None:
        with self._lock:
            heapq.heappush(self._due, (when, next(self._ids), work))
            earliest = self._due[0][0] == when
        if earliest:
            self.clock.ring(self._alarm)  # the bus sleeps until later work: look again

    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopped:
                        return
                    self._alarm = alarm = Alarm()
                    due = self._due[0][0] if self._due else math.inf
                    self._asleep = due > self.clock.now()
                self.clock.sleep(due - self.clock.now(), alarm)
                with self._lock:
                    self._asleep = False
                while True:
                    with self._lock:
                        if not self._due or self._due[0][0] > self.clock.now():
                            break
                        _, _, work = heapq.heappop(self._due)
                    work()
        finally:
            self.clock.leave()


class LocalPipeline:
    """The deployed pipeline, offline. Use as a context manager."""

    def __init__(
        self,
        workflow: WorkflowDefinition,
        emulator: HealthImagingEmulator,
        clock: VirtualClock,
        *,
        handler_hook: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.workflow = workflow
        self.emulator = emulator
        self.clock = clock
        self.handler_hook = handler_hook  # fault injection: runs before every handler call
        self._stack = contextlib.ExitStack()
        self.state_machine_arn = ""
        self.lambda_calls = 0
        self.remaining_millis = 60_000  # what the fake Lambda context reports (idempotency in-progress expiry)
        self.logs = io.StringIO()  # everything the function logged (JSON lines) and its EMF metrics
        self._handler_lock = threading.Lock()  # one invocation at a time
        self._stdout = _InvocationStdout(self.logs)
        self._started_by_hand: set[str] = set()
        self._reported: set[str] = set()  # executions drain_backlog returned already
        self.events = EventDelivery()  # how copy outcome events reach the function (tests change it)
        self.bus = EventBus(clock)
        self._task_call_counters: list[Callable[..., None]] = []

    def __enter__(self) -> LocalPipeline:
        stack = self._stack
        for key, value in {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_METRICS_NAMESPACE": "HealthImagingCopy",
            "POWERTOOLS_SERVICE_NAME": "healthimaging-copy",
        }.items():
            stack.enter_context(mock.patch.dict(os.environ, {key: value}))
        stack.enter_context(mock_aws(config=MOTO_CONFIG))
        function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:copy-image-set"
        refs = {
            "AWS::Partition": "aws",
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            **self.workflow.function_refs(function_arn),
            self.workflow.table_logical_id: TABLE,
        }
        for value in self.workflow.environment.values():  # the queues the function is told about
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                queue = value["Fn::GetAtt"][0]
                refs.setdefault(f"{queue}.Arn", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}")
        environment = {k: str(resolve(v, refs)) for k, v in self.workflow.environment.items()}
        self.completion_queue_arn = environment.get("COMPLETION_QUEUE_ARN", "")
        stack.enter_context(mock.patch.dict(os.environ, environment))
        self._create_aws_resources()
        self.handler = self._load_handler()
        stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", self._invoke))
        clock = self.clock
        stack.enter_context(
            mock.patch.object(
                WaitFunction, "_wait_interval", lambda _self, env, wait_seconds: clock.sleep(wait_seconds)
            )
        )
        stack.enter_context(mock.patch.object(retrier_decl, "time", SimpleNamespace(sleep=clock.sleep)))
        stack.enter_context(mock.patch.object(Timestamp, "_get_wait_seconds", _virtual_timestamp_wait(clock)))
        stack.enter_context(mock.patch.object(execute_state, "threading", SimpleNamespace(Event=_UntimedEvent)))
        stack.enter_context(mock.patch.object(CallbackEndpoint, "wait", _virtual_callback_wait(clock)))
        stack.enter_context(mock.patch.object(CallbackEndpoint, "notify", _ringing(CallbackEndpoint.notify, clock)))
        stack.enter_context(
            mock.patch.object(CallbackEndpoint, "interrupt_all", _closing(CallbackEndpoint.interrupt_all, clock))
        )
        original_logic: Callable[[ExecutionWorker], None] = ExecutionWorker._execution_logic
        original_start: Callable[[ExecutionWorker], None] = ExecutionWorker.start

        def execution_start(worker: ExecutionWorker) -> None:
            clock.join()  # however the execution was started (runner, ops CLI, a test)
            original_start(worker)

        def execution_logic(worker: ExecutionWorker) -> None:
            try:
                original_logic(worker)
            finally:
                clock.leave()

        original_parameters = StateTaskServiceSfn._normalise_parameters

        def api_parameters(task: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            original_parameters(task, parameters, *args, **kwargs)
            for name in list(parameters):  # StateMachineArn, Name, Input -> the API's stateMachineArn, ...
                parameters[name[0].lower() + name[1:]] = parameters.pop(name)

        stack.enter_context(mock.patch.object(StateTaskServiceSfn, "_normalise_parameters", api_parameters))
        stack.enter_context(mock.patch.object(ErrorEqualsDecl, "_eval_body", _error_equals(ErrorEqualsDecl._eval_body)))
        stack.enter_context(
            mock.patch.object(dynamodb_models.DynamoDBBackend, "transact_write_items", _transact_keeping_items)
        )
        stack.enter_context(mock.patch.object(ExecutionWorker, "start", execution_start))
        for code, message in STALE_TOKEN_ANSWERS.items():
            stack.enter_context(mock.patch.object(sfn_models, code, functools.partial(AWSError, message, code)))
        stack.enter_context(mock.patch.object(ExecutionWorker, "_get_evaluation_entrypoint", _parsed_once))
        stack.enter_context(mock.patch.object(dynamodb_table.Table, "all_items", _all_items))
        stack.enter_context(mock.patch.object(dynamodb_table.Table, "sorted_items", _sorted_items))
        stack.enter_context(mock.patch.object(dynamodb_table.Table, "query", _query))
        for module in (lambda_eval_utils, state_task_service_sfn, state_task_service_aws_sdk):
            stack.enter_context(mock.patch.object(module, "boto_client_for", _task_client))
        for module in (json_path, result_path):
            stack.enter_context(mock.patch.object(module, "parse", functools.cache(module.parse)))
        stack.enter_context(mock.patch.object(ExecutionWorker, "_execution_logic", execution_logic))
        definition = str(resolve(json.loads(self.workflow.definition), refs))
        sfn = boto3.client("stepfunctions", region_name=REGION)
        self.state_machine_arn = sfn.create_state_machine(
            # The name the stack gives it: the dispatcher starts executions of STATE_MACHINE_ARN.
            name=environment["STATE_MACHINE_ARN"].rsplit(":", 1)[-1],
            definition=definition,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/healthimaging-copy-workflow",
        )["stateMachineArn"]
        self.backfill_state_machine_arn = ""
        if self.workflow.backfill_definition:
            self.backfill_state_machine_arn = sfn.create_state_machine(
                name=str(resolve(self.workflow.backfill_name, refs)),
                definition=str(resolve(json.loads(self.workflow.backfill_definition), refs)),
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/healthimaging-copy-backfill",
            )["stateMachineArn"]
        self.emulator.timeline_listeners.append(lambda at: self.bus.at(at, self.emulator.settle))
        self.emulator.event_listeners.append(self._announce)
        self._stack.enter_context(self._stdout.installed())
        self.bus.start()
        self._stack.callback(self._stop_bus)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _stop_bus(self) -> None:
        self.bus.stop()
        self.emulator.timeline_listeners.clear()
        self.emulator.event_listeners.clear()

    # --- copy outcome events: HealthImaging -> EventBridge -> completion queue -> the function ---------
    def _announce(self, event: dict[str, Any]) -> None:
        """The emulator announced a copy outcome: deliver it as EventBridge and the completion queue would."""
        if self.events.drop(event):
            self.events.dropped.append(event)
            return
        for _ in range(self.events.copies):
            self.bus.at(self.clock.now() + self.events.delay_seconds, functools.partial(self.deliver_events, [event]))

    def deliver_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The completion queue's event source mapping: copy outcome events to the function (a batch of up to
        10); the events it reported as failed."""
        self.events.delivered.extend(events)
        records = [_sqs_record(str(n), event, source_arn=self.completion_queue_arn) for n, event in enumerate(events)]
        answer = self.call_function({"Records": records})
        failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
        return [event for n, event in enumerate(events) if str(n) in failed]

    def _create_aws_resources(self) -> None:
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST", **self.workflow.table_schema
        )
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="copy-image-set", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        buffer = io.BytesIO()
        import zipfile  # noqa: PLC0415

        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
        boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="copy-image-set",
            Runtime="python3.13",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": buffer.getvalue()},
        )

    def _load_handler(self) -> Callable[..., Any]:
        """Import the real handler fresh, with this pipeline's settings, clients and clock."""
        lambda_dir = str(ROOT / "lambda")
        if lambda_dir not in sys.path:
            sys.path.insert(0, lambda_dir)
        for name in [m for m in sys.modules if m in {"handler", "copier"} or m.startswith("copier.")]:
            del sys.modules[name]
        handler_module = importlib.import_module("handler")
        from copier import clock, healthimaging, legacy_lanes  # noqa: PLC0415
        from copier.dispatcher import starting  # noqa: PLC0415

        attach(healthimaging.read_client(), self.emulator)
        attach(healthimaging.copy_client(), self.emulator)
        # moto's DynamoDB is not safe for calls from several threads at once (its transactions roll back by
        # patching a module, offline/runner.py's too): the dispatcher starts its copies (and labels entries of
        # 0.2.0) one at a time here.
        self._stack.enter_context(mock.patch.object(starting, "START_WORKERS", 1))
        self._stack.enter_context(mock.patch.object(legacy_lanes, "WORKERS", 1))
        self._stack.enter_context(mock.patch.object(clock, "now", self.clock.now))
        self._stack.enter_context(mock.patch.object(clock, "sleep", self._sleep_in_handler))
        for log_handler in logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).handlers:
            if isinstance(log_handler, logging.StreamHandler):
                log_handler.setStream(self.logs)
        handler: Callable[..., Any] = handler_module.handler
        return handler

    def _invoke(
        self, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: dict[str, str]
    ) -> bytes:
        try:
            return json.dumps(self.call_function(json.loads(body or "{}"))).encode()
        except Exception as error:  # the Lambda runtime's view: errorType is the class name
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()

    def call_function(self, event: dict[str, Any]) -> Any:
        """One invocation of the copy function, as Lambda would make it (a Step Functions task, a schedule
        rule, the admission queue's event source mapping)."""
        self.lambda_calls += 1
        context = SimpleNamespace(
            function_name="copy-image-set",
            memory_limit_in_mb=512,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:copy-image-set",
            get_remaining_time_in_millis=lambda: self.remaining_millis,
        )
        if self.handler_hook:
            self.handler_hook(event)
        with self._handler_lock, self._stdout.capturing():
            return self.handler(event, context)

    # --- the backlog: admission queue, dispatcher ---------------------------------------
    def admit(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The admission queue's event source mapping: the events in batches of 10 SQS records; returns
        the events the function reported as failed (SQS would redeliver them, then dead-letter them)."""
        failed: list[dict[str, Any]] = []
        for start in range(0, len(events), ADMISSION_BATCH):
            batch = {str(start + n): event for n, event in enumerate(events[start : start + ADMISSION_BATCH])}
            answer = self.call_function({"Records": [_sqs_record(message_id, e) for message_id, e in batch.items()]})
            failed.extend(batch[item["itemIdentifier"]] for item in answer["batchItemFailures"])
        return failed

    def dispatch(self) -> list[str]:
        """One run of the dispatcher's schedule rule; the executions it started."""
        started = self.call_function({"action": "dispatch"})["started"]
        return [self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}" for name in started]

    def drain_backlog(self, *, timeout: float = 600.0, history: bool = True) -> list[ExecutionRecord]:
        """The dispatcher's schedule, a run a virtual minute, until the backlog is empty and no execution
        runs. Returns the records of the executions the backlog started since the last drain (by these
        runs, or by the admission queue's consumer dispatching at once), in the order they started;
        `history=False` leaves their events out (reading 10,000 histories from moto takes minutes)."""
        from copier import journal  # noqa: PLC0415 (this pipeline's fresh modules)
        from copier.dispatcher import schedule  # noqa: PLC0415

        self.clock.join()  # the schedule is a participant: the clock does not jump past its next run
        idle = 0
        try:
            while True:
                started = self.dispatch()
                running = self._executions(status="RUNNING")
                if not running and not journal.pending(limit=1):
                    break
                idle = 0 if started or running else idle + 1
                if idle >= STUCK_RUNS:  # an hour of runs: what waits is invisible to the dispatcher
                    raise RuntimeError(f"the backlog is stuck: no run started its PENDING entries for {idle} runs")
                self.clock.sleep(schedule.PERIOD_SECONDS)
        finally:
            self.clock.leave()
        arns = [a for a in self._executions() if a not in self._reported and a not in self._started_by_hand]
        self._reported.update(arns)
        return [self.wait(arn, timeout=timeout, history=history) for arn in arns]

    def _executions(self, status: str | None = None) -> list[str]:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        listed = sfn.list_executions(
            stateMachineArn=self.state_machine_arn, maxResults=1000, **({"statusFilter": status} if status else {})
        )
        executions = list(listed["executions"])
        while listed.get("nextToken"):
            listed = sfn.list_executions(
                stateMachineArn=self.state_machine_arn,
                maxResults=1000,
                nextToken=listed["nextToken"],
                **({"statusFilter": status} if status else {}),
            )
            executions.extend(listed["executions"])
        return [e["executionArn"] for e in sorted(executions, key=lambda e: e["startDate"])]

    def run_event(self, event: dict[str, Any]) -> ExecutionRecord:
        """An event's whole way: admitted from the queue, started by the dispatcher, copied."""
        if self.admit([event]):
            raise ValueError("the event was not admitted")
        (record,) = self.drain_backlog()
        return record

    def _sleep_in_handler(self, seconds: float) -> None:
        """StartCopy holding its call: other invocations run meanwhile, as other Lambda environments would
        (holding the lock while asleep on the virtual clock would stop every other execution, and the clock)."""
        self._handler_lock.release()
        try:
            self.clock.sleep(seconds)
        finally:
            self._handler_lock.acquire()

    def count_api_calls(self) -> Counter[str]:
        """From now on, count every AWS API call the function makes, as "service:Operation"."""
        from copier import healthimaging, table  # noqa: PLC0415 (this pipeline's fresh modules)

        calls: Counter[str] = Counter()

        def count(model: Any, **_: Any) -> None:
            calls[f"{model.service_model.service_name}:{model.name}"] += 1

        from copier import wake  # noqa: PLC0415
        from copier.dispatcher import starting  # noqa: PLC0415

        for client in (
            healthimaging.read_client(),
            healthimaging.copy_client(),
            table.client(),  # idempotency's too
            starting.step_functions(),
            wake._step_functions(),
            _task_client(REGION, "dynamodb"),  # Step Functions' own (AwaitCopy)
        ):
            client.meta.events.register("before-call", count)
        return calls

    # --- executions ------------------------------------------------------------------
    def start(self, execution_input: dict[str, Any], name: str | None = None) -> str:
        """An execution started by hand (the console, StartExecution)."""
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = str(
            sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=name or uuid.uuid4().hex, input=json.dumps(execution_input)
            )["executionArn"]
        )
        self._started_by_hand.add(arn)
        return arn

    def started_by_hand(self, execution_arn: str) -> None:
        """An execution started by hand outside `start` (the operator CLI's `start`): not the backlog's, so
        drain_backlog does not report it."""
        self._started_by_hand.add(execution_arn)

    def wait(self, execution_arn: str, timeout: float = 120.0, *, history: bool = True) -> ExecutionRecord:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still running after {timeout} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.2)  # short runs answer fast; long ones are not polled hard
        events = list(_history(sfn, execution_arn)) if history else []
        output = json.loads(described["output"]) if described.get("output") else None
        return ExecutionRecord(
            described["name"], described["status"], output, described.get("error"), described.get("cause"), events
        )

    def run(self, execution_input: dict[str, Any], name: str | None = None) -> ExecutionRecord:
        return self.wait(self.start(execution_input, name))

    def time_out(self, execution_arn: str) -> None:
        """End a running execution as Step Functions does at its state machine's TimeoutSeconds (days here, and
        moto would count them in real time): TIMED_OUT, once the step it is in returns, with no further step."""
        backend: Any = stepfunctions_parser_backends[ACCOUNT][REGION]  # its executions: the parser's own class
        (execution,) = (
            e for machine in backend.state_machines for e in machine.executions if e.exec_arn == execution_arn
        )
        execution.exec_worker.env.set_timed_out()


# What a catch or retry on States.ALL does not take (Step Functions fails the execution on them).
_TERMINAL_ERRORS = (StatesErrorNameType.StatesRuntime, StatesErrorNameType.StatesStatesDataLimitExceeded)


def _error_equals(original: Callable[[ErrorEqualsDecl, Any], None]) -> Callable[[ErrorEqualsDecl, Any], None]:
    def error_equals(decl: ErrorEqualsDecl, env: Any) -> None:
        error_name = env.stack[-1]
        terminal = isinstance(error_name, StatesErrorName) and error_name.typ in _TERMINAL_ERRORS
        original(decl, env)  # pops the error, pushes whether it matched
        if terminal and not any(
            isinstance(name, StatesErrorName) and name.typ == error_name.typ for name in decl.error_names
        ):
            env.stack[-1] = False

    return error_equals


@functools.cache
def _parsed(definition: str) -> EvalComponent:
    program: EvalComponent = AmazonStateLanguageParser.parse(definition)[0]
    return program


def _parsed_once(worker: ExecutionWorker) -> EvalComponent:
    return _parsed(worker._evaluation_details.state_machine_details.definition)


_querying = threading.local()


def _query(table: Any, *args: Any, **kwargs: Any) -> Any:
    _querying.active = True
    try:
        return _original_query(table, *args, **kwargs)
    finally:
        _querying.active = False


def _all_items(table: Any) -> list[Any]:
    """moto's Table.all_items: every item, in key order (a scan pages through that order); unordered for a
    query, which sorts its matches by a key that includes the table's."""
    items = [item for keyed in table.items.values() for item in (keyed.values() if table.range_key_attr else [keyed])]
    if not getattr(_querying, "active", False):
        items.sort(key=lambda item: _sort_key(item.hash_key, item.range_key))
    return items


def _sorted_items(
    table: Any, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]
) -> list[Any]:
    """moto's Table.sorted_items: an index's matches, in the index's key order."""
    names = table._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda item: _sort_key(*(item.attrs[name] for name in names)))
    return items


def _sort_key(*values: Any) -> tuple[Any, ...]:
    return tuple(value.cast_value for value in values if value is not None)


_task_clients: dict[tuple[str, str], Any] = {}
_task_clients_lock = threading.Lock()


def _task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """The client a Step Functions task calls its service with: one per service and region, as moto makes
    them (no parameter validation, no retries)."""
    with _task_clients_lock:
        if (region, service) not in _task_clients:
            _task_clients[region, service] = _original_task_client(region, service, state_credentials)
        return _task_clients[region, service]


_original_task_client = boto_client.boto_client_for
_original_query = dynamodb_table.Table.query
_original_transact = dynamodb_models.DynamoDBBackend.transact_write_items


# One transaction at a time: AwaitCopy's (a Step Functions task's thread) and the function's (the dispatcher's marks)
# can come at once, and each swaps moto's `copy` module for the no-op below. Two overlapping swaps, undone out of
# order, would leave the no-op in place: every later transaction, in any test, would no longer roll back.
_transactions = threading.Lock()


def _transact_keeping_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's TransactWriteItems, rolled back by restoring the items it names rather than whole tables."""
    with _transactions:
        kept = []
        for entry in transact_items:
            (operation,) = entry.values()
            table = backend.get_table(operation["TableName"])
            key = operation.get("Key") or {table.hash_key_attr: operation["Item"][table.hash_key_attr]}
            found = backend.get_item(operation["TableName"], key)
            kept.append((operation["TableName"], key, found.to_json()["Attributes"] if found else None))
        no_copy = SimpleNamespace(deepcopy=lambda table: table)  # moto's own rollback becomes a no-op
        try:
            with mock.patch.object(dynamodb_models, "copy", no_copy):
                _original_transact(backend, transact_items)
        except Exception:
            for table_name, key, attributes in kept:
                if attributes is None:
                    if backend.get_item(table_name, key) is not None:
                        backend.delete_item(table_name, key)
                else:
                    backend.put_item(table_name, attributes)
            raise


def _sqs_record(message_id: str, event: dict[str, Any], *, source_arn: str | None = None) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": json.dumps(event),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn or f"arn:aws:sqs:{REGION}:{ACCOUNT}:admission",
        "awsRegion": REGION,
    }


class _InvocationStdout(io.TextIOBase):
    """sys.stdout while a pipeline runs: what a thread writes during an invocation (the function's EMF
    metrics) goes to `logs`, anything else to the stdout found on entry. sys.stdout is one object for every
    thread: swapping it per invocation sent what the test's own thread printed meanwhile (an operator CLI's
    answer) into the function's logs."""

    def __init__(self, logs: io.StringIO) -> None:
        self._logs = logs
        self._terminal: TextIO = sys.stdout
        self._local = threading.local()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        self._terminal, sys.stdout = sys.stdout, self
        try:
            yield
        finally:
            sys.stdout = self._terminal

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """This thread's writes go to `logs` until the invocation ends (nested invocations count)."""
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def _target(self) -> TextIO:
        return self._logs if getattr(self._local, "depth", 0) else self._terminal

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._target().isatty()


class _UntimedEvent(threading.Event):
    """execute_state's wait for a task: until the task ends (its timeout runs on the virtual clock, in the
    task), not for its timeout in real seconds."""

    def wait(self, timeout: float | None = None) -> bool:
        return super().wait()


def _alarm_of(endpoint: CallbackEndpoint) -> Alarm:
    alarm: Alarm | None = getattr(endpoint, "_virtual_alarm", None)
    if alarm is None:
        alarm = Alarm()
        endpoint._virtual_alarm = alarm  # type: ignore[attr-defined]
    return alarm


def _virtual_callback_wait(clock: VirtualClock) -> Callable[..., Any]:
    def wait(endpoint: CallbackEndpoint, timeout: float | None = None) -> Any:
        clock.sleep(math.inf if timeout is None else float(timeout), _alarm_of(endpoint))
        return endpoint.get_outcome()

    return wait


def _ringing(notify: Callable[..., None], clock: VirtualClock) -> Callable[..., None]:
    def ringing(endpoint: CallbackEndpoint, outcome: Any) -> None:
        notify(endpoint, outcome)
        clock.ring(_alarm_of(endpoint))

    return ringing


def _closing(interrupt_all: Callable[..., None], clock: VirtualClock) -> Callable[..., None]:
    """The task is over (sent back, timed out, failed): its token is refused from now on, as on AWS."""

    def closing(endpoint: CallbackEndpoint) -> None:
        interrupt_all(endpoint)
        if endpoint.consumer_error is None:
            endpoint.consumer_error = CallbackConsumerLeft()
        clock.ring(_alarm_of(endpoint))

    return closing


def _virtual_timestamp_wait(clock: VirtualClock) -> Callable[..., int]:
    def wait_seconds(state: Timestamp, env: Any) -> int:
        state.string.eval(env=env)
        text = str(env.stack.pop())
        at = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return max(0, math.ceil(at.timestamp() - clock.now()))

    return wait_seconds


def _history(sfn: Any, execution_arn: str) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        page = sfn.get_execution_history(
            executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        yield from page["events"]
        token = page.get("nextToken")
        if not token:
            return
