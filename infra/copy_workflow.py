"""The state machine: one copy's life, every attempt visible in the console history.

Written top-down in the order a copy runs (JSONPath: moto runs it offline):
1. ValidateInput -> RouteCopy -> [FindPrimaryOfSeries]         what to copy, or skip
2. ReserveCopySlot -> WaitForCopySlot -> StartCopy              on its slot (StartCopy holds); Retry on
                                                                conflict, quota, transient; throttled:
                                                                back to ReserveCopySlot
3. [ConfirmCopy <-> WaitBeforeLookingAgain]                     the call's answer never came
4. WaitForCopy <-> CheckCopy -> ReportResult -> Copied          judged on the version it produces
5. InconsistentMetadata -> AlreadyForced? -> AuthoriseForce     force branch, back to 2
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from .settings import EXECUTION_TIMEOUT_DAYS, RetrySettings, StackSettings
from .workflow_parts import function_step, logged_state_machine


class CopyWorkflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IVersion,
        function_timeout: Duration,
        state_machine_name: str,
        name_prefix: str,
        settings: StackSettings,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self._function = function
        self._function_timeout = function_timeout

        # 1. What to copy.
        validate = self._step("ValidateInput", "validate", {"input": sfn.JsonPath.entire_payload}, "$")
        route = sfn.Choice(self, "RouteCopy")
        find_primary = self._step("FindPrimaryOfSeries", "find_primary", {"request": "$.request"}, "$")

        # 2. Start it, at the quota's pace.
        no_slot_yet = sfn.Pass(
            self, "NoSlotYet", result=sfn.Result.from_object({"reservations": 0}), result_path="$.slot"
        )
        reserve = self._step(
            "ReserveCopySlot",
            "reserve_slot",
            {"reservations": sfn.JsonPath.number_at("$.slot.reservations")},
            "$.slot",
        )
        wait_for_slot = sfn.Wait(self, "WaitForCopySlot", time=sfn.WaitTime.seconds_path("$.slot.waitSeconds"))
        start = self._step(
            "StartCopy",
            "start_copy",
            {
                "request": "$.request",
                "slotAt": sfn.JsonPath.number_at("$.slot.at"),  # StartCopy holds its call until then
                "retryCount": sfn.JsonPath.number_at("$$.State.RetryCount"),
            },
            "$.copy",
        )
        self._retry(start, ["CopyConflict"], settings.conflict_retry())
        self._retry(start, ["CopyQuotaExceeded"], settings.throttle_retry())
        start.add_retry(
            errors=["IdempotencyAlreadyInProgressError"],
            interval=Duration.seconds(10),
            backoff_rate=1.5,
            max_attempts=12,
            jitter_strategy=sfn.JitterType.FULL,
        )

        # 3. The call's answer never came: prove it ours, start again, or stop.
        confirm = self._step("ConfirmCopy", "confirm_copy", {"request": "$.request"}, "$.copy")
        confirmed = sfn.Choice(self, "CopyConfirmed?")
        look_again = sfn.Wait(self, "WaitBeforeLookingAgain", time=sfn.WaitTime.seconds_path("$.copy.nextPollSeconds"))

        # 4. Wait for the version this copy produces.
        wait_for_copy = sfn.Wait(self, "WaitForCopy", time=sfn.WaitTime.seconds_path("$.copy.nextPollSeconds"))
        check = self._step("CheckCopy", "check_copy", {"request": "$.request", "copy": "$.copy"}, "$.copy")
        finished = sfn.Choice(self, "CopyFinished?")
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
        )

        # 5. Inconsistent metadata: force, if the policy allows it, once.
        already_forced = sfn.Choice(
            self, "AlreadyForced?", comment="Inconsistent metadata: was this copy already forced?"
        )
        authorise = self._step("AuthoriseForce", "authorise_force", {"request": "$.request"}, "$.request")

        # Ends. Every failure after ValidateInput is written to the copy journal before the execution fails.
        record_failure = self._step(
            "RecordFailure", "record_failure", {"request": "$.request", "error": "$.error"}, sfn.JsonPath.DISCARD
        )
        skipped = sfn.Pass(self, "ReportSkipped", parameters={"status": "SKIPPED", "reason.$": "$.reason"})
        invalid_input = sfn.Fail(self, "InvalidInput", error_path="$.error.Error", cause_path="$.error.Cause")
        did_not_complete = sfn.Fail(self, "CopyDidNotComplete", error_path="$.error.Error", cause_path="$.error.Cause")
        still_inconsistent = sfn.Fail(
            self,
            "StillInconsistentAfterForce",
            error="InconsistentMetadata",
            comment="A forced copy reported inconsistent metadata again: a person must look.",
            cause_path="$.error.Cause",
        )

        # The wiring, in the same order.
        validate.add_catch(invalid_input, errors=["InvalidCopyRequest"], result_path="$.error")
        validate.next(route)
        route.when(sfn.Condition.boolean_equals("$.skip", True), skipped.next(sfn.Succeed(self, "NothingToCopy")))
        route.when(sfn.Condition.boolean_equals("$.resolveDestination", True), find_primary)
        route.otherwise(no_slot_yet.next(reserve))
        find_primary.next(route)
        reserve.next(wait_for_slot).next(start).next(wait_for_copy)
        # Throttled on its slot (another client of the account's quota): a new slot, not an unpaced retry
        # that would take the token of the next paced call. ReserveCopySlot counts them and stops.
        start.add_catch(reserve, errors=["CopyThrottled"], result_path="$.throttled")
        start.add_catch(confirm, errors=["CopyOutcomeUnknown"], result_path="$.error")
        confirm.next(confirmed)
        confirmed.when(sfn.Condition.string_equals("$.copy.status", "COPYING"), wait_for_copy)
        confirmed.when(sfn.Condition.string_equals("$.copy.status", "NOT_ACCEPTED"), reserve)
        confirmed.otherwise(look_again.next(confirm))
        wait_for_copy.next(check).next(finished)
        finished.when(sfn.Condition.string_equals("$.copy.status", "COPIED"), report.next(sfn.Succeed(self, "Copied")))
        finished.otherwise(wait_for_copy)
        for step in (start, check):
            step.add_catch(already_forced, errors=["InconsistentMetadata"], result_path="$.error")
        already_forced.when(sfn.Condition.boolean_equals("$.request.force", True), still_inconsistent)
        already_forced.otherwise(authorise.next(reserve))
        validate.add_catch(did_not_complete, errors=["States.ALL"], result_path="$.error")
        for task in (find_primary, reserve, start, confirm, check, authorise):
            task.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")
        record_failure.next(did_not_complete)
        record_failure.add_catch(did_not_complete, errors=["States.ALL"], result_path="$.journalError")

        self.log_group, self.state_machine = logged_state_machine(
            self,
            # Named, so that the function can be told the state machine's ARN without depending on it.
            name=state_machine_name,
            name_prefix=name_prefix,
            start=validate,
            # Copies can wait for slots and retries for hours in a burst; bounded all the same.
            timeout=Duration.days(EXECUTION_TIMEOUT_DAYS),
            comment="Copies one HealthImaging image set (healthimaging-copy)",
            settings=settings,
            key=key,
        )

    def _step(self, name: str, action: str, fields: dict[str, Any], result_path: str) -> tasks.LambdaInvoke:
        return function_step(
            self,
            name,
            function=self._function,
            function_timeout=self._function_timeout,
            action=action,
            fields=fields,
            result_path=result_path,
        )

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
