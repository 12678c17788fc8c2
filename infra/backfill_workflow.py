"""The backfill workflow: the copy policy applied to image sets that already exist (lambda/copier/backfill.py).

    BackfillPage -> BackfillDone? -> BetweenPages -> BackfillPage ...      one SearchImageSets page per loop
                         |-- done --------------------------> BackfillEnded
                         '-- continueAsNew -> ContinueAsNewExecution -> HandedOver

A paced loop, not a Distributed Map: the backfill only admits (the dispatcher paces the copies), its
cursor lives in a DynamoDB item so a stopped backfill resumes where it was, and SearchImageSets pages are
sequential anyway (each needs the previous page's token). After PAGES_PER_EXECUTION pages the function
asks for a new execution, which this one starts (named by the function, so a retried start is the same
execution) before it ends: Step Functions keeps at most 25,000 history events per execution, and a
backfill of 1,000,000 image sets is 20,000 pages.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from .settings import StackSettings
from .workflow_parts import function_step, logged_state_machine

# 1,000 pages of up to 50 image sets, a couple of seconds each: about an hour per execution.
EXECUTION_TIMEOUT = Duration.days(1)
# SearchImageSets is shared with reconciliation and copies: a page, then this pause, keeps a backfill under one page a
# second, within the share of searchImageSetsRatePerSecond the dispatcher leaves paging (PAGING_SEARCHES_PER_SECOND).
PAUSE_BETWEEN_PAGES = Duration.seconds(1)


class BackfillWorkflow(Construct):
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
        page = function_step(
            self,
            "BackfillPage",
            function=function,
            function_timeout=function_timeout,
            action="backfill_page",
            fields={
                "input": {
                    "backfillId": sfn.JsonPath.string_at("$.backfillId"),
                    "filters": sfn.JsonPath.object_at("$.filters"),
                }
            },
            result_path="$.page",
        )
        itself = sfn.StateMachine.from_state_machine_arn(
            self,
            "Itself",
            Stack.of(self).format_arn(
                service="states",
                resource="stateMachine",
                resource_name=state_machine_name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
        )
        continue_as_new = tasks.StepFunctionsStartExecution(
            self,
            "ContinueAsNewExecution",
            state_machine=itself,
            name=sfn.JsonPath.string_at("$.page.nextExecutionName"),
            input=sfn.TaskInput.from_object(
                {
                    "backfillId": sfn.JsonPath.string_at("$.backfillId"),
                    "filters": sfn.JsonPath.object_at("$.page.filters"),
                }
            ),
            integration_pattern=sfn.IntegrationPattern.REQUEST_RESPONSE,
            result_path=sfn.JsonPath.DISCARD,
        )
        # The same name and input is the same execution (StartExecution is idempotent for 90 days): retrying
        # cannot start the next execution twice.
        continue_as_new.add_retry(
            errors=["States.ALL"],
            interval=Duration.seconds(2),
            backoff_rate=2,
            max_attempts=6,
            max_delay=Duration.seconds(60),
            jitter_strategy=sfn.JitterType.FULL,
        )
        done = sfn.Choice(self, "BackfillDone?")
        done.when(sfn.Condition.boolean_equals("$.page.done", True), sfn.Succeed(self, "BackfillEnded"))
        done.when(
            sfn.Condition.boolean_equals("$.page.continueAsNew", True),
            continue_as_new.next(sfn.Succeed(self, "HandedOver")),
        )
        done.otherwise(sfn.Wait(self, "BetweenPages", time=sfn.WaitTime.duration(PAUSE_BETWEEN_PAGES)).next(page))
        page.next(done)

        self.log_group, self.state_machine = logged_state_machine(
            self,
            name=state_machine_name,
            name_prefix=name_prefix,  # named: it starts its own next execution by ARN
            start=page,
            timeout=EXECUTION_TIMEOUT,
            comment="Admits existing HealthImaging image sets to the copy backlog, a search page at a time",
            settings=settings,
            key=key,
        )
