"""The moto internals the local runner patches (offline/runner.py). If moto moves them, this
fails loudly here rather than making the runner quietly sleep for real or echo payloads."""

from __future__ import annotations

import inspect

from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.dynamodb import models as dynamodb_models
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker


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
