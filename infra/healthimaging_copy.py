"""HealthImagingCopy: the whole pipeline for one data store, as a construct a CDK app puts where it wants.

EventBridge rule (ImportTrigger) --> admission queue --> copy Lambda: the copy journal's backlog (PENDING)
EventBridge rule (CopyCompletion) --> completion queue --> copy Lambda `wake`: copies waiting for their event
schedule, every minute (Dispatcher) --> copy Lambda `dispatch` --> state machine (CopyWorkflow), paced
schedule (ReconciliationSchedule) --> copy Lambda `reconcile`: missed events into the backlog
ops.cli backfill --> state machine (BackfillWorkflow) --> copy Lambda `backfill_page`: existing image sets into it
state machine --> copy Lambda (CopyFunction) --> HealthImaging (one data store), DynamoDB (IdempotencyTable)
Monitoring: alarms to an SNS topic; an operations dashboard. One KMS key encrypts logs, table, queues,
topic and the function's environment. Outputs: the names the operator CLI reads (infra/outputs.py).

Props are the settings of docs/configuration.md as Python keywords, validated by the same model as the
app's context (infra/settings.py); a prop left out (None) takes its default. `alarm_topic` takes a topic
of the host app (or give `alarm_topic_arn`); without either the construct creates its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aws_cdk import Acknowledgment, Annotations, ArnFormat, Stack, Token, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from . import naming, outputs, read_budgets
from .backfill_workflow import BackfillWorkflow
from .copy_completion import CopyCompletion
from .copy_function import CopyFunction
from .copy_workflow import CopyWorkflow
from .dashboard import OperationsDashboard
from .dispatcher import Dispatcher
from .idempotency_table import IdempotencyTable
from .import_trigger import ImportTrigger
from .monitoring import Monitoring
from .reconciliation_schedule import ReconciliationSchedule
from .settings import CONSTRUCT_PROPS, SettingsError, validate
from .version_pruning import VersionPruning

# Each cdk-nag finding the construct accepts, and why (tests/test_stack_scanners.py runs both packs).
NO_FUNCTION_DLQ = (
    "Invoked synchronously by Step Functions, which retries and records every failure; an asynchronous "
    "DLQ would never receive anything"
)
NO_VPC = (
    "The function only calls regional AWS APIs (HealthImaging, DynamoDB) over TLS with IAM auth; a VPC "
    "would add NAT cost and no control over the data path"
)
NO_RESERVED_CONCURRENCY = (
    "reservedConcurrency is unset so the stack deploys on accounts whose concurrency quota cannot spare a "
    "reservation (Lambda keeps 100 unreserved); setting it caps the function (docs/configuration.md)"
)
ACCEPTED_FINDINGS = {
    "AwsSolutions::AwsSolutions-IAM5[Resource::*]": "X-Ray trace writes (function and state machine roles), "
    "the CloudWatch Logs delivery actions Step Functions logging needs and states:SendTaskSuccess (the function "
    "wakes waiting copies: the task token names the task) support no resource-level permissions",
    "AwsSolutions::AwsSolutions-IAM5[Action::kms:ReEncrypt*]": "CDK's grant_read_write_data on the table "
    "encrypted with this stack's key: kms:ReEncrypt* on that one key, for the function only",
    "AwsSolutions::AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": "The function writes table items encrypted "
    "with this stack's key (CDK's table grant): data keys of that one key only",
    "AwsSolutions::AwsSolutions-L1": "Python 3.13 is pinned on purpose: the handler is tested on it and the "
    "bundled wheels are built for it",
    "HIPAA.Security::HIPAA.Security-IAMNoInlinePolicy": "CDK grants are AWS::IAM::Policy resources scoped to this "
    "stack's resources; a managed policy would grant the same, less visibly",
    "HIPAA.Security::HIPAA.Security-LambdaDLQ": NO_FUNCTION_DLQ,
    "HIPAA.Security::HIPAA.Security-LambdaInsideVPC": NO_VPC,
    "HIPAA.Security::HIPAA.Security-DynamoDBInBackupPlan": "Point-in-time recovery is on; the table holds ids and "
    "expiring idempotency records only",
}

# HIPAA Security's finding on an alarm with no action, accepted on the alarms that inform (BulkBacklogLate) alone.
INFORMATION_ALARM = "HIPAA.Security::HIPAA.Security-CloudWatchAlarmAction"
INFORMATION_ALARM_REASON = (
    "BulkBacklogLate informs and pages nobody by design: backfills an hour behind their share of the quota are "
    "shown on the dashboard, and what slows them also slows new imports, which LiveBacklogLate pages for; a host "
    "app may wire information_alarms to a ticket queue"
)

# checkov's findings the construct accepts on the function, read from its CloudFormation Metadata.
CHECKOV_SKIPS_ON_FUNCTION = {"CKV_AWS_116": NO_FUNCTION_DLQ, "CKV_AWS_117": NO_VPC}


class HealthImagingCopy(Construct):
    """Copies the image sets of one HealthImaging data store by its copy policy (docs/configuration.md)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        datastore_id: str,
        alarm_topic: sns.ITopic | None = None,
        copy_policy: Literal["snapshot", "merge-into-primary", "off"] | None = None,
        force_policy: Literal["never", "same-patient", "always"] | None = None,
        trigger_detail_types: Sequence[str] | None = None,
        copy_rate_per_second: float | None = None,
        get_image_set_rate_per_second: float | None = None,
        get_image_set_metadata_rate_per_second: float | None = None,
        search_image_sets_rate_per_second: float | None = None,
        concurrent_copy_quota: int | None = None,
        bulk_minimum_share: float | None = None,
        conflict_retry_attempts: int | None = None,
        conflict_retry_interval_seconds: int | None = None,
        conflict_retry_max_delay_seconds: int | None = None,
        throttle_retry_attempts: int | None = None,
        poll_initial_seconds: int | None = None,
        poll_max_seconds: int | None = None,
        completion_wait_seconds: int | None = None,
        max_wait_seconds: int | None = None,
        copy_record_retention_days: int | None = None,
        journal_retention_days: int | None = None,
        log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None,
        workflow_log_level: Literal["ALL", "ERROR", "FATAL", "OFF"] | None = None,
        alarm_topic_arn: str | None = None,
        log_retention_days: Literal[30, 90, 180, 365, 731, 1827, 3653] | None = None,
        reserved_concurrency: int | None = None,
        reconciliation_interval_minutes: int | None = None,
        datastore_kms_key_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        props = {name: value for name, value in locals().items() if name in CONSTRUCT_PROPS and value is not None}
        settings = validate(props, where=f"HealthImagingCopy {self.node.path}", python_names=True)
        if alarm_topic is not None and alarm_topic_arn is not None:
            raise SettingsError(f"HealthImagingCopy {self.node.path}: give alarm_topic or alarm_topic_arn, not both")
        self.settings = settings
        read_bound = read_budgets.read_bound_warning(settings)
        if read_bound is not None:
            Annotations.of(self).add_warning_v2(read_budgets.WARNING_ID, read_bound)
        stack = Stack.of(self)
        self.name_prefix = naming.name_prefix(self)
        self.service = naming.service_name(self)

        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            description="Encrypts the HealthImaging copy pipeline's logs, table, queue and topic",
        )
        self._allow_service_use_of_key()

        self.idempotency = IdempotencyTable(self, "IdempotencyTable", key=self.key)
        state_machine_name = f"{self.name_prefix}-copy"
        state_machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.copy_function = CopyFunction(
            self,
            "CopyImageSetFunction",
            environment={
                **settings.function_environment(),
                "IDEMPOTENCY_TABLE": self.idempotency.table.table_name,
                "STATE_MACHINE_ARN": state_machine_arn,
            },
            key=self.key,
            log_retention_days=settings.log_retention_days,
            reserved_concurrency=settings.reserved_concurrency,
            service=self.service,
        )
        self.workflow = CopyWorkflow(
            self,
            "CopyWorkflow",
            function=self.copy_function.version,
            function_timeout=CopyFunction.TIMEOUT,
            state_machine_name=state_machine_name,
            name_prefix=self.name_prefix,
            settings=settings,
            key=self.key,
            table=self.idempotency.table,
        )
        self.backfill = BackfillWorkflow(
            self,
            "BackfillWorkflow",
            function=self.copy_function.version,
            function_timeout=CopyFunction.TIMEOUT,
            state_machine_name=f"{self.name_prefix}-backfill",
            name_prefix=self.name_prefix,
            settings=settings,
            key=self.key,
        )
        self.trigger = ImportTrigger(
            self,
            "ImportTrigger",
            function=self.copy_function.function,
            function_timeout=CopyFunction.TIMEOUT,
            datastore_id=settings.datastore_id,
            detail_types=settings.trigger_detail_types,
            key=self.key,
        )
        if settings.copy_policy == "off":
            self.trigger.rule.node.default_child.add_property_override("State", "DISABLED")  # type: ignore[union-attr]
        self.completion = CopyCompletion(
            self,
            "CopyCompletion",
            function=self.copy_function.function,
            function_timeout=CopyFunction.TIMEOUT,
            datastore_id=settings.datastore_id,
            copy_rate_per_second=settings.copy_rate_per_second,
            key=self.key,
        )
        self.dispatcher = Dispatcher(
            self,
            "Dispatcher",
            function=self.copy_function.function,
            state_machine_arn=state_machine_arn,
            execution_arn_prefix=stack.format_arn(
                service="states",
                resource="execution",
                resource_name=state_machine_name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
        )
        self.reconciliation = (
            ReconciliationSchedule(
                self,
                "Reconciliation",
                function=self.copy_function.function,
                interval_minutes=settings.reconciliation_interval_minutes,
            )
            if settings.reconciliation_interval_minutes and settings.copy_policy != "off"
            else None
        )
        self.version_pruning = VersionPruning(self, "VersionPruning", function=self.copy_function.function)
        if alarm_topic is None and settings.alarm_topic_arn:
            alarm_topic = sns.Topic.from_topic_arn(self, "AlarmTopic", settings.alarm_topic_arn)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            state_machine=self.workflow.state_machine,
            backfill_state_machine=self.backfill.state_machine,
            function=self.copy_function.function,
            dead_letter_queue=self.trigger.dead_letter_queue,
            completion_dead_letter_queue=self.completion.dead_letter_queue,
            alarm_topic=alarm_topic,
            alarm_name_prefix=f"{self.name_prefix}-",
            service=self.service,
            key=self.key,
        )
        self.operations_dashboard = OperationsDashboard(
            self,
            "OperationsDashboard",
            state_machine=self.workflow.state_machine,
            function=self.copy_function.function,
            admission_queue=self.trigger.admission_queue,
            dead_letter_queue=self.trigger.dead_letter_queue,
            completion_dead_letter_queue=self.completion.dead_letter_queue,
            copy_rate_per_second=settings.copy_rate_per_second,
            alarms=[*self.monitoring.alarms, *self.monitoring.information],
            name=self.name_prefix,
            service=self.service,
        )

        # What a host app wires more to.
        self.table: dynamodb.Table = self.idempotency.table
        self.function: lambda_.Function = self.copy_function.function
        self.state_machine: sfn.StateMachine = self.workflow.state_machine
        self.backfill_state_machine: sfn.StateMachine = self.backfill.state_machine
        self.admission_queue: sqs.Queue = self.trigger.admission_queue
        self.dead_letter_queue: sqs.Queue = self.trigger.dead_letter_queue
        self.completion_queue: sqs.Queue = self.completion.queue
        self.completion_dead_letter_queue: sqs.Queue = self.completion.dead_letter_queue
        self.alarm_topic: sns.ITopic = self.monitoring.topic
        self.alarms: list[cloudwatch.Alarm] = self.monitoring.alarms  # each to alarm_topic
        self.information_alarms: list[cloudwatch.Alarm] = self.monitoring.information  # no action: the dashboard
        self.dashboard: cloudwatch.Dashboard = self.operations_dashboard.dashboard

        # Wiring, in one place: what may call what.
        self.table.grant_read_write_data(self.function)
        self.function.add_to_role_policy(self._healthimaging_policy())
        if settings.datastore_kms_key_arn:
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="UseTheDatastoreKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[settings.datastore_kms_key_arn],
                )
            )
        if self.monitoring.own_topic:
            self._let_alarms_notify(self.monitoring.own_topic)
        self._accept_findings()
        outputs.publish(self)

    def _accept_findings(self) -> None:
        stack = Stack.of(self)
        # cdk-nag names the resource as synthesized: pseudo parameters, or the stack's env when set.
        region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
        account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
        datastore_arn = (
            f"arn:<AWS::Partition>:medical-imaging:{region}:{account}:datastore/{self.settings.datastore_id}"
        )
        function_arn = stack.resolve(self.function.function_arn)["Fn::GetAtt"][0]
        table_arn = stack.resolve(self.table.table_arn)["Fn::GetAtt"][0]
        accepted = {
            **ACCEPTED_FINDINGS,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{datastore_arn}/imageset/*]": (
                "image set ids are created at run time; the scope is this data store's image sets"
            ),
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{function_arn}.Arn>:*]": (
                "the daily pruning deletes old versions of this one function (lambda/copier/versions.py): any of its"
                " versions, never the function itself"
            ),
            f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:{region}:{account}:execution:"
            f"{self.name_prefix}-copy:*]": (
                "the dispatcher reads the status of this stack's copy executions, whose names are made per copy"
            ),
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{table_arn}.Arn>/index/*]": (
                "the indexes of this stack's one table (byDestination: which copy produced an image set version)"
            ),
        }
        checkov_skips = dict(CHECKOV_SKIPS_ON_FUNCTION)
        if self.settings.reserved_concurrency is None:
            accepted["HIPAA.Security::HIPAA.Security-LambdaConcurrency"] = NO_RESERVED_CONCURRENCY
            checkov_skips["CKV_AWS_115"] = NO_RESERVED_CONCURRENCY
        for rule_id, reason in accepted.items():
            Validations.of(self).acknowledge(Acknowledgment(id=rule_id, reason=reason))
        # Only on the alarms that inform: a paging alarm without its action still stops synth.
        for alarm in self.information_alarms:
            Validations.of(alarm).acknowledge(Acknowledgment(id=INFORMATION_ALARM, reason=INFORMATION_ALARM_REASON))
        self.accepted_findings = {**accepted, INFORMATION_ALARM: INFORMATION_ALARM_REASON}  # each is still raised
        self.function.node.default_child.add_metadata(  # type: ignore[union-attr]
            "checkov", {"skip": [{"id": check, "comment": why} for check, why in checkov_skips.items()]}
        )

    def _healthimaging_policy(self) -> iam.PolicyStatement:
        datastore_arn = Stack.of(self).format_arn(
            service="medical-imaging", resource="datastore", resource_name=self.settings.datastore_id
        )
        return iam.PolicyStatement(
            sid="CopyImageSetsOfOneDatastore",
            actions=[
                "medical-imaging:GetImageSet",
                "medical-imaging:GetImageSetMetadata",
                "medical-imaging:SearchImageSets",
                "medical-imaging:CopyImageSet",
            ],
            resources=[datastore_arn, f"{datastore_arn}/imageset/*"],
        )

    def _let_alarms_notify(self, topic: sns.Topic) -> None:
        """CloudWatch publishes alarm notifications as itself, to a topic encrypted with the construct's key:
        it needs sns:Publish on the topic and the key's data-key operations (SNS guide, "compatibility
        between event sources from AWS services and encrypted topics"). Only for this construct's alarms."""
        stack = Stack.of(self)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisStack",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnEquals": {"aws:SourceArn": [alarm.alarm_arn for alarm in self.monitoring.alarms]},
                },
            )
        )
        # The key policy cannot name the alarms' ARNs (key -> topic -> alarms would be a cycle): their
        # names share the construct's prefix instead.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisStack",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name=f"{self.monitoring.alarm_name_prefix}*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )

    def _allow_service_use_of_key(self) -> None:
        stack = Stack.of(self)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:*"
                        )
                    }
                },
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                # EventBridge sends to the admission queue and the dead-letter queue, both under this key.
                sid="EventBridgeToEncryptedQueues",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
