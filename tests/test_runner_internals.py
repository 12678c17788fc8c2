"""The moto internals the local runner patches (offline/runner.py). If moto moves them, this
fails loudly here rather than making the runner quietly sleep for real or echo payloads."""

from __future__ import annotations

import contextlib
import copy
import inspect
import random
import threading
from decimal import Decimal
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table
from moto.stepfunctions.parser import models as sfn_models
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec import execute_state
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk,
    state_task_service_callback,
    state_task_service_sfn,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, CallbackPoolManager
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from offline import runner


def test_patched_moto_internals_are_where_the_runner_expects_them() -> None:
    assert list(inspect.signature(LambdaSimpleBackend.invoke).parameters) == [
        "self",
        "function_name",
        "qualifier",
        "body",
        "headers",
        "response_headers",
    ]
    assert list(inspect.signature(WaitFunction._wait_interval).parameters) == ["self", "env", "wait_seconds"]
    assert "time.sleep(" in inspect.getsource(retrier_decl.RetrierDecl._eval_body)
    assert callable(ExecutionWorker._execution_logic) and callable(ExecutionWorker.start)
    # The runner's cheaper rollback: moto snapshots each table with copy.deepcopy, from this module.
    assert list(inspect.signature(dynamodb_models.DynamoDBBackend.transact_write_items).parameters) == [
        "self",
        "transact_items",
    ]
    assert "copy.deepcopy(" in inspect.getsource(dynamodb_models.DynamoDBBackend.transact_write_items)
    assert dynamodb_models.copy.deepcopy is not None
    assert list(inspect.signature(StateTaskServiceSfn._normalise_parameters).parameters) == [
        "self",
        "parameters",
        "boto_service_name",
        "service_action_name",
    ]
    # Work moto repeats that the runner does once: parsing definitions and paths, task clients, sort keys.
    assert "AmazonStateLanguageParser.parse(" in inspect.getsource(ExecutionWorker._get_evaluation_entrypoint)
    assert lambda_eval_utils.boto_client_for is state_task_service_sfn.boto_client_for
    assert callable(json_path.parse) and callable(result_path.parse)
    assert list(inspect.signature(Table.sorted_items).parameters) == [
        "self",
        "hash_key_attrs",
        "range_key_attrs",
        "items",
    ]
    assert "cast_value <" in inspect.getsource(dynamodb_models.DynamoType.__lt__)
    # The callback pattern (AwaitCopy): the wait for a task token, its notification, the end of its task; the
    # real-time wait around every task; a timestamp Wait's seconds; the SDK integration's client.
    assert list(inspect.signature(CallbackEndpoint.wait).parameters) == ["self", "timeout"]
    assert list(inspect.signature(CallbackEndpoint.notify).parameters) == ["self", "outcome"]
    assert "callback_endpoint.wait(" in inspect.getsource(
        state_task_service_callback.StateTaskServiceCallback._wait_for_task_token_timeout
    )
    assert "callback_endpoint.interrupt_all()" in inspect.getsource(
        state_task_service_callback.StateTaskServiceCallback._eval_integration_pattern
    )
    assert "consumer_error" in inspect.getsource(CallbackPoolManager.notify)  # a closed task's token is refused
    # ... with these, which moto raises without a message (the runner gives them Step Functions' answers).
    refusal = inspect.getsource(sfn_models.StepFunctionsParserBackend.send_task_success)
    assert all(f"raise {code}()" in refusal for code in runner.STALE_TOKEN_ANSWERS)
    source = inspect.getsource(execute_state.ExecutionState._evaluate_with_timeout)
    assert "threading.Event()" in source and "terminated_event.wait(timeout_seconds)" in source
    assert list(inspect.signature(Timestamp._get_wait_seconds).parameters) == ["self", "env"]
    assert "datetime.datetime.now()" in inspect.getsource(Timestamp._get_wait_seconds)
    assert state_task_service_aws_sdk.boto_client_for is lambda_eval_utils.boto_client_for
    # Called by LocalPipeline.time_out: an execution's worker, its environment, and the time-out moto sets.
    assert list(inspect.signature(Environment.set_timed_out).parameters) == ["self"]
    assert "exec_worker" in inspect.get_annotations(Execution) and "env" in inspect.getsource(ExecutionWorker.__init__)


def test_states_all_takes_any_error_but_the_terminal_ones_as_step_functions_does() -> None:
    """moto's States.ALL takes States.Runtime too (an intrinsic function failing on the state's data): the
    runner's does not, so a workflow that would fail on AWS fails here."""
    error_equals = runner._error_equals(ErrorEqualsDecl._eval_body)
    runtime = StatesErrorName(typ=StatesErrorNameType.StatesRuntime)

    def matches(caught: list[Any], error: Any) -> bool:
        env = mock.Mock(stack=[error])
        error_equals(ErrorEqualsDecl(caught), env)
        (matched,) = env.stack
        return bool(matched)

    states_all = [StatesErrorName(typ=StatesErrorNameType.StatesALL)]
    assert not matches(states_all, runtime)
    assert not matches(states_all, StatesErrorName(typ=StatesErrorNameType.StatesStatesDataLimitExceeded))
    assert matches(states_all, CustomErrorName("CopyThrottled"))
    assert matches(states_all, StatesErrorName(typ=StatesErrorNameType.StatesTimeout))
    assert matches([runtime], runtime)  # named, it is caught


def test_the_runners_sorts_give_motos_order() -> None:
    """The runner's cheaper sorts (converted values as keys) order items exactly as moto's comparisons do:
    numbers as numbers (9 before 10), strings as strings, ties by the table's key."""
    rng = random.Random(7)
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": kind}
                for name, kind in (("id", "S"), ("journalStatus", "S"), ("updatedAt", "N"))
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "byStatus",
                    "KeySchema": [
                        {"AttributeName": "journalStatus", "KeyType": "HASH"},
                        {"AttributeName": "updatedAt", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        for n in range(300):
            boto3.client("dynamodb").put_item(
                TableName="t",
                Item={
                    "id": {"S": f"journal#{rng.randrange(10**6)}"},
                    "journalStatus": {"S": rng.choice(["PENDING", "FAILED", "COPIED"])},
                    "updatedAt": {"N": str(rng.choice([9, 10, 100, 1.5, 1767225600.25, n % 7]))},
                },
            )
        table = dynamodb_backends["123456789012"]["us-east-1"].get_table("t")
        keys = (["journalStatus", "id"], ["updatedAt", None])
        assert [i.hash_key for i in runner._all_items(table)] == [i.hash_key for i in Table.all_items(table)]
        mine = runner._sorted_items(table, *keys, Table.all_items(table))
        assert [i.attrs for i in mine] == [i.attrs for i in Table.sorted_items(table, *keys, Table.all_items(table))]
        # Within a status, numeric order, which is not the strings' order (the check can tell them apart).
        pending = [i.attrs["updatedAt"].value for i in mine if i.attrs["journalStatus"].value == "PENDING"]
        assert pending == sorted(pending, key=Decimal) != sorted(pending)
        # Whole: a query pages through the same items, and a scan too, with the runner's three patches.
        assert _pages(boto3.client("dynamodb")) == _pages(boto3.client("dynamodb"), patched=True)


def _pages(client: Any, *, patched: bool = False) -> list[Any]:
    """Every page of an index query (limit 7) and of a scan (limit 11), in order."""
    with contextlib.ExitStack() as patches:
        if patched:
            for name, replacement in (
                ("all_items", runner._all_items),
                ("sorted_items", runner._sorted_items),
                ("query", runner._query),
            ):
                patches.enter_context(mock.patch.object(Table, name, replacement))
        queried = client.get_paginator("query").paginate(
            TableName="t",
            IndexName="byStatus",
            KeyConditionExpression="journalStatus = :s",
            ExpressionAttributeValues={":s": {"S": "PENDING"}},
            PaginationConfig={"PageSize": 7},
        )
        scanned = client.get_paginator("scan").paginate(TableName="t", PaginationConfig={"PageSize": 11})
        return [(page["Items"], page.get("LastEvaluatedKey")) for page in (*queried, *scanned)]


def test_overlapping_transactions_leave_motos_rollback_in_place() -> None:
    """AwaitCopy's transaction (a Step Functions task's thread) and the dispatcher's (the function's) can come at
    once. Each swaps moto's `copy` for a no-op while it runs: two overlapping, ending in the wrong order, would
    leave the no-op for every later transaction of the session (none would roll back). Made to overlap here:
    the first is held inside until the second has begun (or half a second has passed)."""
    first_inside, second_inside, first_done = threading.Event(), threading.Event(), threading.Event()

    def held(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        if threading.current_thread().name == "first":
            first_inside.set()
            second_inside.wait(0.5)  # the second begins now, unless the runner keeps it out
        else:
            second_inside.set()
            first_done.wait(0.5)  # and ends after the first
        original(backend, transact_items)

    original = runner._original_transact
    with mock_aws(), mock.patch.object(dynamodb_models, "copy", copy):  # put back after, whatever happens
        client = boto3.client("dynamodb")
        client.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        )

        def transaction(item: str) -> None:
            put = {"Put": {"TableName": "t", "Item": {"id": {"S": item}}}}
            boto3.client("dynamodb").transact_write_items(TransactItems=[put])

        def first() -> None:
            transaction("a")
            first_done.set()

        def second() -> None:
            first_inside.wait(2)
            transaction("b")

        with (
            mock.patch.object(runner, "_original_transact", held),
            mock.patch.object(dynamodb_models.DynamoDBBackend, "transact_write_items", runner._transact_keeping_items),
        ):
            threads = [threading.Thread(target=first, name="first"), threading.Thread(target=second, name="second")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert {item["id"]["S"] for item in client.scan(TableName="t")["Items"]} == {"a", "b"}  # both ran
        assert dynamodb_models.copy is copy  # moto's own module, back in place
