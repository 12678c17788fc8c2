"""What the copy and backfill workflows build alike: a task that runs one of the copy function's actions,
retried on transient errors, and a Standard state machine with X-Ray and its own encrypted log group."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from .log_groups import retention, vended_log_group_name
from .settings import StackSettings

# Errors worth retrying whatever the step: Lambda service faults, the function timing out or
# crashing, DynamoDB or HealthImaging reads briefly unavailable.
TRANSIENT_ERRORS = [
    "Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException", "Lambda.Unknown", "Sandbox.Timedout", "Runtime.ExitError", "States.Timeout",
    "HealthImagingUnavailable", "TableUnavailable", "CopyRecordChanged",
    "IdempotencyPersistenceLayerError", "IdempotencyPersistenceConnectionError", "IdempotencyInconsistentStateError",
]  # fmt: skip
# A task may run a little longer than the function (invoke overhead) before Step Functions gives up on it.
TASK_TIMEOUT_MARGIN = Duration.seconds(10)
LOG_LEVELS = {
    "ALL": sfn.LogLevel.ALL,
    "ERROR": sfn.LogLevel.ERROR,
    "FATAL": sfn.LogLevel.FATAL,
    "OFF": sfn.LogLevel.OFF,
}


def function_step(
    scope: Construct,
    name: str,
    *,
    function: lambda_.IVersion,
    function_timeout: Duration,
    action: str,
    fields: dict[str, Any],
    result_path: str,
) -> tasks.LambdaInvoke:
    """A task running the function's `action`; a string field is a path into the state, anything else
    is passed as it is."""
    payload: dict[str, Any] = {"action": action, "executionId": sfn.JsonPath.string_at("$$.Execution.Id")}
    for key, value in fields.items():
        payload[key] = sfn.JsonPath.string_at(value) if isinstance(value, str) else value
    step = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(payload),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path=result_path,
        task_timeout=sfn.Timeout.duration(
            Duration.seconds(function_timeout.to_seconds() + TASK_TIMEOUT_MARGIN.to_seconds())
        ),
    )
    step.add_retry(
        errors=TRANSIENT_ERRORS,
        interval=Duration.seconds(2),
        backoff_rate=2,
        max_attempts=6,
        max_delay=Duration.seconds(60),
        jitter_strategy=sfn.JitterType.FULL,
    )
    return step


def logged_state_machine(
    scope: Construct,
    *,
    name: str,
    name_prefix: str,
    start: sfn.IChainable,
    timeout: Duration,
    comment: str,
    settings: StackSettings,
    key: kms.IKey,
) -> tuple[logs.LogGroup, sfn.StateMachine]:
    """A named Standard state machine with X-Ray, logging to its own log group (kept, encrypted with the
    stack's key, under /aws/vendedlogs/), execution data never logged."""
    log_group = logs.LogGroup(
        scope,
        "LogGroup",
        log_group_name=vended_log_group_name(scope, "states", name_prefix),
        encryption_key=key,
        retention=retention(settings.log_retention_days),
        removal_policy=RemovalPolicy.RETAIN,
    )
    state_machine = sfn.StateMachine(
        scope,
        "StateMachine",
        state_machine_name=name,
        definition_body=sfn.DefinitionBody.from_chainable(start),
        state_machine_type=sfn.StateMachineType.STANDARD,
        tracing_enabled=True,
        timeout=timeout,
        logs=sfn.LogOptions(
            destination=log_group, level=LOG_LEVELS[settings.workflow_log_level], include_execution_data=False
        ),
        comment=comment,
    )
    return log_group, state_machine
