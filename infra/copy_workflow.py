"""The state machine: one copy's life, every attempt visible in the console history.

ValidateInput -> RouteCopy -> [ResolvePrimary] -> ReserveCopySlot -> WaitForCopySlot
-> StartCopy (Retry: conflict, throttling, transient) -> [WaitBeforeConfirm -> ConfirmCopy]
-> WaitForCopy <-> CheckCopy -> ReportResult
InconsistentMetadata (at once or as COPY_FAILED) -> ConsultForcePolicy -> AuthoriseForce
-> ReserveCopySlot again with force: true. Written in JSONPath (moto runs it offline).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.settings import RetrySettings, StackSettings

# Errors worth retrying whatever the step: Lambda service faults, the function timing out or
# crashing, DynamoDB or HealthImaging reads briefly unavailable.
TRANSIENT_ERRORS = [
    "Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException", "Lambda.Unknown", "Sandbox.Timedout", "Runtime.ExitError", "States.Timeout",
    "HealthImagingUnavailable", "LedgerUnavailable",
    "IdempotencyPersistenceLayerError", "IdempotencyPersistenceConnectionError",
]  # fmt: skip
LOG_LEVELS = {
    "ALL": sfn.LogLevel.ALL,
    "ERROR": sfn.LogLevel.ERROR,
    "FATAL": sfn.LogLevel.FATAL,
    "OFF": sfn.LogLevel.OFF,
}


class CopyWorkflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        settings: StackSettings,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self._function = function
        self._settings = settings

        invalid_input = sfn.Fail(self, "InvalidInput", error_path="$.error.Error", cause_path="$.error.Cause")
        copy_failed = sfn.Fail(self, "CopyDidNotComplete", error_path="$.error.Error", cause_path="$.error.Cause")
        still_inconsistent = sfn.Fail(
            self,
            "StillInconsistentAfterForce",
            error="InconsistentMetadata",
            comment="A forced copy reported inconsistent metadata again: a person must look.",
            cause_path="$.error.Cause",
        )

        validate = self._step("ValidateInput", "validate", {"input": sfn.JsonPath.entire_payload}, "$")
        validate.add_catch(invalid_input, errors=["InvalidCopyRequest"], result_path="$.error")
        validate.add_catch(copy_failed, errors=["States.ALL"], result_path="$.error")

        resolve = self._step("ResolvePrimary", "resolve_destination", {"request": "$.request"}, "$")
        resolve.add_catch(copy_failed, errors=["States.ALL"], result_path="$.error")

        reserve = self._step("ReserveCopySlot", "reserve_slot", {}, "$.slot")
        reserve.add_catch(copy_failed, errors=["States.ALL"], result_path="$.error")
        wait_for_slot = sfn.Wait(self, "WaitForCopySlot", time=sfn.WaitTime.seconds_path("$.slot.waitSeconds"))

        start = self._step(
            "StartCopy",
            "start_copy",
            {"request": "$.request", "retryCount": sfn.JsonPath.number_at("$$.State.RetryCount")},
            "$.copy",
            timeout_seconds=60,
        )
        self._retry(start, ["CopyConflict"], settings.conflict_retry())
        self._retry(start, ["CopyThrottled", "CopyQuotaExceeded"], settings.throttle_retry())
        start.add_retry(
            errors=["IdempotencyAlreadyInProgressError"],
            interval=Duration.seconds(10),
            backoff_rate=1.5,
            max_attempts=12,
            jitter_strategy=sfn.JitterType.FULL,
        )

        confirm = self._step("ConfirmCopy", "confirm_copy", {"request": "$.request", "copy": "$.copy"}, "$.copy")
        confirm.add_catch(copy_failed, errors=["States.ALL"], result_path="$.error")
        wait_before_confirm = sfn.Wait(
            self, "WaitBeforeConfirm", time=sfn.WaitTime.seconds_path("$.copy.nextPollSeconds")
        )
        restart = sfn.Pass(
            self,
            "StartAgainNextGeneration",
            input_path="$.copy.retryRequest",
            result_path="$.request",
            comment="The earlier CopyImageSet was confirmed NOT accepted: start it again.",
        )

        wait_for_copy = sfn.Wait(self, "WaitForCopy", time=sfn.WaitTime.seconds_path("$.copy.nextPollSeconds"))
        check = self._step("CheckCopy", "check_copy", {"request": "$.request", "copy": "$.copy"}, "$.copy")

        authorise = self._step(
            "AuthoriseForce", "authorise_force", {"request": "$.request", "error": "$.error"}, "$.request"
        )
        authorise.add_catch(copy_failed, errors=["States.ALL"], result_path="$.error")
        consult = (
            sfn.Choice(self, "ConsultForcePolicy", comment="Inconsistent metadata: may this copy be forced?")
            .when(sfn.Condition.boolean_equals("$.request.force", True), still_inconsistent)
            .otherwise(authorise.next(reserve))
        )
        for step in (start, check):
            step.add_catch(consult, errors=["InconsistentMetadata"], result_path="$.error")
            step.add_catch(copy_failed, errors=["States.ALL"], result_path="$.error")

        report = sfn.Pass(
            self,
            "ReportResult",
            parameters={
                "datastoreId.$": "$.request.datastoreId",
                "sourceImageSetId.$": "$.request.sourceImageSetId",
                "sourceVersionId.$": "$.copy.sourceVersionId",
                "destinationImageSetId.$": "$.copy.destinationImageSetId",
                "destinationVersionId.$": "$.copy.destinationVersionId",
                "status.$": "$.copy.status",
                "forced.$": "$.copy.forced",
                "promotedToPrimary.$": "$.request.promoteToPrimary",
                "attempts.$": "$.copy.attempts",
                "polls.$": "$.copy.polls",
                "waitedSeconds.$": "$.copy.waitedSeconds",
            },
        ).next(sfn.Succeed(self, "Copied"))
        skipped = sfn.Pass(self, "ReportSkipped", parameters={"status": "SKIPPED", "reason.$": "$.reason"}).next(
            sfn.Succeed(self, "NothingToCopy")
        )

        poll = wait_for_copy.next(check).next(
            sfn.Choice(self, "CopyFinished?")
            .when(sfn.Condition.string_equals("$.copy.status", "COPIED"), report)
            .otherwise(wait_for_copy)
        )
        confirm_loop = wait_before_confirm.next(confirm).next(
            sfn.Choice(self, "CopyAccepted?")
            .when(sfn.Condition.string_equals("$.copy.status", "NOT_ACCEPTED"), restart.next(reserve))
            .when(sfn.Condition.string_equals("$.copy.status", "UNCONFIRMED"), wait_before_confirm)
            .otherwise(poll)
        )
        route = (
            sfn.Choice(self, "RouteCopy")
            .when(sfn.Condition.boolean_equals("$.skip", True), skipped)
            .when(sfn.Condition.boolean_equals("$.resolveDestination", True), resolve)
            .otherwise(
                reserve.next(wait_for_slot)
                .next(start)
                .next(
                    sfn.Choice(self, "OutcomeKnown?")
                    .when(sfn.Condition.string_equals("$.copy.status", "UNCONFIRMED"), confirm_loop)
                    .otherwise(poll)
                )
            )
        )
        resolve.next(route)

        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            encryption_key=key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(validate.next(route)),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            # Copies can wait for slots and retries for hours in a burst; bounded all the same.
            timeout=Duration.days(2),
            logs=sfn.LogOptions(
                destination=self.log_group, level=LOG_LEVELS[settings.workflow_log_level], include_execution_data=False
            ),
            comment="Copies one HealthImaging image set (healthimaging-copy)",
        )

    def _step(
        self, name: str, action: str, fields: dict[str, Any], result_path: str, timeout_seconds: int = 60
    ) -> tasks.LambdaInvoke:
        payload: dict[str, Any] = {"action": action, "executionId": sfn.JsonPath.string_at("$$.Execution.Id")}
        for key, value in fields.items():
            payload[key] = sfn.JsonPath.string_at(value) if isinstance(value, str) else value
        step = tasks.LambdaInvoke(
            self,
            name,
            lambda_function=self._function,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
            task_timeout=sfn.Timeout.duration(Duration.seconds(timeout_seconds + 10)),
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

    @staticmethod
    def _retry(step: tasks.LambdaInvoke, errors: list[str], retry: RetrySettings) -> None:
        step.add_retry(
            errors=errors,
            interval=Duration.seconds(retry.interval_seconds),
            backoff_rate=retry.backoff_rate,
            max_attempts=retry.max_attempts,
            max_delay=Duration.seconds(retry.max_delay_seconds),
            jitter_strategy=sfn.JitterType.FULL,
        )
