"""The state machine: one copy's life, every attempt visible in the console history.

Written top-down in the order a copy runs (JSONPath: moto runs it offline):
1. RouteCopy -> [ValidateInput] -> [FindPrimaryOfSeries]        what to copy, or skip; the dispatcher's
                                                                input is already a plan with its slot
2. [ReserveCopySlot] -> WaitForCopySlot -> StartCopy            on its slot (StartCopy holds); Retry on
   [WaitForSlotToFindPrimary -> FindPrimaryOfSeries ->          conflict, transient; throttled or over a
    FoundOnSlot?] -> StartCopy                                  quota: back to ReserveCopySlot. The
                                                                dispatcher's merge-into-primary plan finds
                                                                its destination on its slot: its reads go
                                                                at the planned rate
3. [ConfirmCopy <-> WaitBeforeLookingAgain]                     the call's answer never came
4. AwaitCopy <-> CheckCopy -> ReportResult -> Copied            woken by the completion event (or its
   [WaitBeforeAwaitingAgain]                                    fallback wait), judged on its own version;
                                                                AwaitCopy's write refused: a wait first
5. InconsistentMetadata -> AlreadyForced? -> AuthoriseForce     force branch, back to 2
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from .settings import EXECUTION_TIMEOUT_DAYS, RetrySettings, StackSettings
from .workflow_parts import function_step, logged_state_machine

# copier.wake.KEY_PREFIX and EXPIRES_AFTER_SECONDS: the item AwaitCopy leaves its task token on.
WAKE_KEY_PREFIX = "wake#"
WAKE_EXPIRES_AFTER_SECONDS = 3 * 86_400


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
        table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self._function = function
        self._function_timeout = function_timeout

        # 1. What to copy. The dispatcher starts a copy with its plan and its slot (copier.dispatcher); any other
        # input (the console contract, an event, an older dispatcher's {"admitted": ...}) is validated first.
        route = sfn.Choice(self, "RouteCopy", comment="A plan with its slot (the dispatcher's input), or not yet")
        validate = self._step("ValidateInput", "validate", {"input": sfn.JsonPath.entire_payload}, "$")
        find_primary = self._step(
            "FindPrimaryOfSeries", "find_primary", {"request": "$.request", "slot": "$.slot"}, "$"
        )

        # 2. Start it on its slot: the dispatcher's, or one reserved on the pacing item.
        reserve = self._step("ReserveCopySlot", "reserve_slot", {"slot": "$.slot"}, "$.slot")
        wait_for_slot = sfn.Wait(self, "WaitForCopySlot", time=sfn.WaitTime.timestamp_path("$.slot.waitUntil"))
        # merge-into-primary: the dispatcher starts a minute of copies within seconds, and FindPrimaryOfSeries reads
        # three times a copy (GetImageSet, GetImageSetMetadata, SearchImageSets: copier.budgets): on their slots,
        # 1/rate apart, those reads keep to the rate the budgets planned instead of a burst at each run.
        wait_to_find = sfn.Wait(self, "WaitForSlotToFindPrimary", time=sfn.WaitTime.timestamp_path("$.slot.waitUntil"))
        found_on_slot = sfn.Choice(self, "FoundOnSlot?", comment="After FindPrimaryOfSeries: on a slot already?")
        start = self._step(
            "StartCopy",
            "start_copy",
            {
                "request": "$.request",
                "slotAt": sfn.JsonPath.number_at("$.slot.at"),  # StartCopy holds its call until then
                "planned": "$.slot.planned",  # the dispatcher's slot: its journal entry says STARTED already
                "retryCount": sfn.JsonPath.number_at("$$.State.RetryCount"),
            },
            "$.copy",
        )
        self._retry(start, ["CopyConflict"], settings.conflict_retry())
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

        # 4. Wait for the version this copy produces: woken by its completion event, or not (best effort).
        await_copy = self._await_copy(table)
        check = self._step(
            "CheckCopy", "check_copy", {"request": "$.request", "copy": "$.copy", "wake": "$.wake"}, "$.copy"
        )
        finished = sfn.Choice(self, "CopyFinished?")
        await_again = sfn.Wait(
            self, "WaitBeforeAwaitingAgain", time=sfn.WaitTime.seconds_path("$.copy.nextPollSeconds")
        )
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
        route.when(sfn.Condition.not_(self._is_plan()), validate)
        route.when(sfn.Condition.boolean_equals("$.skip", True), skipped.next(sfn.Succeed(self, "NothingToCopy")))
        has_slot = sfn.Condition.and_(
            sfn.Condition.is_present("$.slot.at"), sfn.Condition.is_present("$.slot.waitUntil")
        )
        resolve = sfn.Condition.boolean_equals("$.resolveDestination", True)
        route.when(sfn.Condition.and_(resolve, has_slot), wait_to_find.next(find_primary))  # found on its slot
        route.when(resolve, find_primary)  # a copy started by hand: found first, its slot reserved then
        route.when(has_slot, wait_for_slot)
        route.otherwise(reserve)
        validate.add_catch(invalid_input, errors=["InvalidCopyRequest"], result_path="$.error")
        validate.next(route)
        find_primary.next(found_on_slot)
        found_on_slot.when(sfn.Condition.and_(sfn.Condition.boolean_equals("$.skip", False), has_slot), start)
        found_on_slot.otherwise(route)
        reserve.next(wait_for_slot).next(start).next(await_copy)
        # Throttled on its slot (another client of the account's quota), or refused over the concurrent-copy
        # quota: a new slot later, not an unpaced retry that would take the token of the next paced call.
        # ReserveCopySlot slows the pace for it, counts the copy's slots and stops at throttleRetryAttempts.
        start.add_catch(reserve, errors=["CopyThrottled", "CopyQuotaExceeded"], result_path="$.slot.pushback")
        start.add_catch(confirm, errors=["CopyOutcomeUnknown"], result_path="$.error")
        confirm.next(confirmed)
        confirmed.when(sfn.Condition.string_equals("$.copy.status", "COPYING"), await_copy)
        confirmed.when(sfn.Condition.string_equals("$.copy.status", "NOT_ACCEPTED"), reserve)
        confirmed.otherwise(look_again.next(confirm))
        await_copy.next(check)
        # Timed out (no event came), an event already recorded (it came first), or its write refused: look.
        await_copy.add_catch(check, errors=["States.ALL"], result_path="$.wake")
        check.next(finished)
        finished.when(sfn.Condition.string_equals("$.copy.status", "COPIED"), report.next(sfn.Succeed(self, "Copied")))
        # AwaitCopy's write failed (not its condition): a growing wait before it tries again, never straight back.
        finished.when(
            sfn.Condition.and_(
                sfn.Condition.is_present("$.copy.awaitFailed"), sfn.Condition.boolean_equals("$.copy.awaitFailed", True)
            ),
            await_again.next(await_copy),
        )
        finished.otherwise(await_copy)
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
            start=route,
            # Copies can wait for slots and retries for hours in a burst; bounded all the same.
            timeout=Duration.days(EXECUTION_TIMEOUT_DAYS),
            comment="Copies one HealthImaging image set (healthimaging-copy)",
            settings=settings,
            key=key,
        )
        self._allow_await_copy(table, key)

    @staticmethod
    def _is_plan() -> sfn.Condition:
        """The state after ValidateInput, or the dispatcher's input: a plan and a slot."""
        return sfn.Condition.and_(
            *(sfn.Condition.is_present(path) for path in ("$.request", "$.skip", "$.resolveDestination", "$.slot"))
        )

    def _await_copy(self, table: dynamodb.ITable) -> sfn.CustomState:
        """The copy's task token onto the wake items of its destination and its source (one transaction: an
        event may name either, copier.wake), unless a completion event newer than the copy's wakeSince is on
        either already (then the transaction is cancelled at once, and the copy is looked at); then a wait for
        an event (copier.wake sends the token back) or the fallback wait, whichever ends first."""
        images = {"destination": "$.copy.destinationImageSetId", "source": "$.request.sourceImageSetId"}
        expiration = f"States.Format('{{}}', States.MathAdd($.copy.wakeSince, {WAKE_EXPIRES_AFTER_SECONDS}))"

        def leave_token(image: str, partner: str) -> dict[str, Any]:
            return {
                "Update": {
                    "TableName": table.table_name,
                    "Key": {"id": {"S.$": f"States.Format('{WAKE_KEY_PREFIX}{{}}', {images[image]})"}},
                    "UpdateExpression": "SET #token = :token, #since = :since, #expiration = :expiration,"
                    " #partner = :partner",
                    "ConditionExpression": "attribute_not_exists(#eventAt) OR #eventAt < :since",
                    "ExpressionAttributeNames": {
                        "#token": "token",
                        "#since": "since",
                        "#eventAt": "eventAt",
                        "#expiration": "expiration",
                        "#partner": "partner",
                    },
                    "ExpressionAttributeValues": {
                        ":token": {"S.$": "$$.Task.Token"},
                        ":since": {"N.$": "States.Format('{}', $.copy.wakeSince)"},
                        ":expiration": {"N.$": expiration},
                        ":partner": {"S.$": images[partner]},
                    },
                }
            }

        partition = Stack.of(self).partition
        return sfn.CustomState(
            self,
            "AwaitCopy",
            state_json={
                "Type": "Task",
                "Comment": "Waits for the copy's completion event (copier.wake), or its fallback wait",
                "Resource": f"arn:{partition}:states:::aws-sdk:dynamodb:transactWriteItems.waitForTaskToken",
                "Parameters": {
                    "TransactItems": [leave_token("destination", "source"), leave_token("source", "destination")]
                },
                "TimeoutSecondsPath": "$.copy.nextPollSeconds",
                "ResultPath": "$.wake",
            },
        )

    def _allow_await_copy(self, table: dynamodb.ITable, key: kms.IKey) -> None:
        """AwaitCopy writes wake items only (their keys begin wake#), encrypted with the stack's key. An Update of
        TransactWriteItems is authorised as dynamodb:UpdateItem, each item's key against the condition (DynamoDB
        developer guide, "Using IAM with DynamoDB transactions")."""
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="LeaveTaskTokensOnWakeItems",
                actions=["dynamodb:UpdateItem"],
                resources=[table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{WAKE_KEY_PREFIX}*"]}},
            )
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="WakeItemsEncryptedWithTheStacksKey",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                resources=[key.key_arn],
                # Only through DynamoDB: the same key encrypts the queues, the logs and the alarm topic.
                conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{Stack.of(self).region}.amazonaws.com"}},
            )
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
