"""The CDK app, synthesized in process once per session: resources, security, linters, settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Capture, Match, Template
from stack_app import CONTEXT, CUSTOM_SETTINGS, DS, KEY_ARN, REGION, resolved, resources, synthesize

from infra.app import build_app
from infra.settings import SettingsError, stack_settings_from_context
from infra.stack import CopyPipelineStack
from offline.template import WorkflowDefinition, function_refs, resolve, state_machine
from offline.template import synthesize as synthesize_app_py

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def template() -> Template:
    return synthesize()[1]


def test_one_of_each_part(template: Template) -> None:
    for kind, count in {
        "AWS::Lambda::Function": 1,
        "AWS::StepFunctions::StateMachine": 2,  # copies, backfills
        "AWS::Events::Rule": 5,  # imports, copy outcomes, the dispatcher, reconciliation, version pruning
        "AWS::Lambda::Version": 1,  # what the state machines invoke
        "AWS::DynamoDB::Table": 1,
        "AWS::SQS::Queue": 4,  # admission and its dead letters, completion and its dead letters
        "AWS::Lambda::EventSourceMapping": 2,  # admission queue -> function, completion queue -> function
        "AWS::KMS::Key": 1,
        "AWS::CloudWatch::Alarm": 13,  # 12 that page, 1 that informs (the bulk lane late against its share)
        "AWS::SNS::Topic": 1,
    }.items():
        template.resource_count_is(kind, count)


def test_function_runtime_architecture_and_settings(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Handler": "handler.handler",
            "TracingConfig": {"Mode": "Active"},
            "Timeout": 60,
            "KmsKeyArn": {"Fn::GetAtt": [_logical_id(template, "AWS::KMS::Key"), "Arn"]},
            # None reserved by default: a new account's low concurrency quota would refuse the deploy.
            "ReservedConcurrentExecutions": Match.absent(),
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "DATASTORE_ID": DS,
                        "COPY_POLICY": "snapshot",
                        "FORCE_POLICY": "same-patient",
                        "POWERTOOLS_SERVICE_NAME": "healthimaging-copy",
                        "IDEMPOTENCY_TABLE": Match.any_value(),
                    }
                )
            },
        },
    )


def test_idempotency_table_is_on_demand_with_ttl_pitr_and_kms(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": Match.any_value()},
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        },
    )


def test_rule_matches_only_this_datastore_and_targets_the_admission_queue_with_a_dlq(template: Template) -> None:
    target = Capture()
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.medical-imaging"],
                "detail-type": ["Image Set Created"],
                "detail": {"datastoreId": [DS]},
            },
            "Targets": [target],
        },
    )
    admission, dead_letters = _queue(template, "AdmissionQueue"), _queue(template, "DeadLetterQueue")
    assert target.as_object()["Arn"] == {"Fn::GetAtt": [admission, "Arn"]}
    assert target.as_object()["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dead_letters, "Arn"]}
    assert target.as_object()["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    queues = template.find_resources("AWS::SQS::Queue")
    assert all(queue["Properties"]["KmsMasterKeyId"] for queue in queues.values())
    # What the function cannot admit is redelivered, then dead-lettered beside what EventBridge could not deliver.
    assert queues[admission]["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead_letters, "Arn"]},
        "maxReceiveCount": 5,
    }
    assert queues[admission]["Properties"]["VisibilityTimeout"] == 360  # 6 x the function's timeout
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [admission, "Arn"]},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 2},
        },
    )


def _queue(template: Template, construct_id: str, construct: str = "ImportTrigger") -> str:
    (logical_id,) = [
        name for name in template.find_resources("AWS::SQS::Queue") if name.startswith(f"{construct}{construct_id}")
    ]
    return logical_id


def test_copy_outcome_events_of_this_datastore_go_to_the_completion_queue_and_never_to_admission(
    template: Template,
) -> None:
    """The pipeline's own copies announce themselves with these events: a queue of their own (copy storm)."""
    target = Capture()
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.medical-imaging"],
                "detail-type": ["Image Set Copied", "Image Set Copy Failed"],
                "detail": {"datastoreId": [DS]},
            },
            "Targets": [target],
        },
    )
    completion = _queue(template, "Queue", "CopyCompletion")
    dead_letters = _queue(template, "DeadLetterQueue", "CopyCompletion")
    assert target.as_object()["Arn"] == {"Fn::GetAtt": [completion, "Arn"]}
    assert target.as_object()["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dead_letters, "Arn"]}
    assert completion != _queue(template, "AdmissionQueue")
    rules = template.find_resources("AWS::Events::Rule", {"Properties": {"EventPattern": Match.any_value()}})
    for rule in rules.values():  # no rule sends a copy outcome to admission
        (rule_target,) = rule["Properties"]["Targets"]
        outcomes = {"Image Set Copied", "Image Set Copy Failed"} & set(
            rule["Properties"]["EventPattern"]["detail-type"]
        )
        assert not outcomes or rule_target["Arn"] == {"Fn::GetAtt": [completion, "Arn"]}
    queue = template.find_resources("AWS::SQS::Queue")[completion]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead_letters, "Arn"]},
        "maxReceiveCount": 5,
    }
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [completion, "Arn"]},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    assert function["Properties"]["Environment"]["Variables"]["COMPLETION_QUEUE_ARN"] == {
        "Fn::GetAtt": [completion, "Arn"]
    }


def test_await_copy_may_write_wake_items_only_and_the_function_may_send_task_tokens_back(template: Template) -> None:
    statements = {
        statement.get("Sid"): statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in _list(policy["Properties"]["PolicyDocument"]["Statement"])
    }
    wake_items = statements["LeaveTaskTokensOnWakeItems"]
    assert wake_items["Action"] == "dynamodb:UpdateItem"
    assert wake_items["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["wake#*"]}}
    assert wake_items["Resource"] == {"Fn::GetAtt": [_logical_id(template, "AWS::DynamoDB::Table"), "Arn"]}
    # SendTaskSuccess has no resource type (Service Authorization Reference): the token names the task.
    wake = statements["WakeWaitingCopies"]
    assert (wake["Action"], wake["Resource"]) == ("states:SendTaskSuccess", "*")
    # The state machine's only DynamoDB permission: the transaction's Updates are each authorised as UpdateItem,
    # their keys against LeadingKeys (DynamoDB developer guide, "Using IAM with DynamoDB transactions").
    _, machine = state_machine(template.to_json())
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    dynamodb_actions = {
        action
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": role}]
        for statement in _list(policy["Properties"]["PolicyDocument"]["Statement"])
        for action in _list(statement["Action"])
        if str(action).startswith("dynamodb:")
    }
    assert dynamodb_actions == {"dynamodb:UpdateItem"}
    states = json.loads(_definition(template))["States"]
    await_copy = states["AwaitCopy"]
    assert await_copy["Resource"] == "arn:aws:states:::aws-sdk:dynamodb:transactWriteItems.waitForTaskToken"
    # Its token on the destination's wake item and the source's, each naming the other: an event may name either.
    destination, source = (item["Update"] for item in await_copy["Parameters"]["TransactItems"])
    assert destination["Key"] == {"id": {"S.$": "States.Format('wake#{}', $.copy.destinationImageSetId)"}}
    assert source["Key"] == {"id": {"S.$": "States.Format('wake#{}', $.request.sourceImageSetId)"}}
    assert destination["ExpressionAttributeValues"][":partner"] == {"S.$": "$.request.sourceImageSetId"}
    assert source["ExpressionAttributeValues"][":partner"] == {"S.$": "$.copy.destinationImageSetId"}
    for item in (destination, source):
        assert item["ConditionExpression"] == "attribute_not_exists(#eventAt) OR #eventAt < :since"
        assert item["ExpressionAttributeValues"][":token"] == {"S.$": "$$.Task.Token"}
    assert [c["ErrorEquals"] for c in await_copy["Catch"]] == [["States.ALL"]]  # no event, one before, a failure
    assert await_copy["Next"] == await_copy["Catch"][0]["Next"] == "CheckCopy"
    # A failed AwaitCopy (not its condition: CheckCopy says which) waits before it tries again.
    (copied, await_failed) = states["CopyFinished?"]["Choices"]
    assert copied["Next"] == "ReportResult" and states["CopyFinished?"]["Default"] == "AwaitCopy"
    assert {c.get("Variable") for c in await_failed["And"]} == {"$.copy.awaitFailed"}
    assert await_failed["Next"] == "WaitBeforeAwaitingAgain"
    assert states["WaitBeforeAwaitingAgain"] == {
        "Type": "Wait",
        "SecondsPath": "$.copy.nextPollSeconds",
        "Next": "AwaitCopy",
    }
    # The wake items' key: DynamoDB encrypts them with the stack's key, for the state machine only through DynamoDB.
    wake_key = statements["WakeItemsEncryptedWithTheStacksKey"]
    via = {"Fn::Join": ["", ["dynamodb.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
    assert wake_key["Condition"] == {"StringEquals": {"kms:ViaService": via}}


def test_the_workflow_and_the_function_agree_on_the_wake_items_and_the_copy_outcomes() -> None:
    """Written twice (the CDK app does not import the function's code): AwaitCopy's item and expiry, the
    completion rule's detail-types, and what copier.wake reads and accepts."""
    import copier.wake
    from infra import copy_completion, copy_workflow

    assert copy_workflow.WAKE_KEY_PREFIX == copier.wake.KEY_PREFIX
    assert copy_workflow.WAKE_EXPIRES_AFTER_SECONDS == copier.wake.EXPIRES_AFTER_SECONDS
    assert copy_completion.COPY_OUTCOMES == copier.wake.COPY_OUTCOMES


def test_the_dispatchers_plans_skip_validation_and_every_other_input_is_validated(template: Template) -> None:
    states = json.loads(_definition(template))["States"]
    assert json.loads(_definition(template))["StartAt"] == "RouteCopy"
    (not_a_plan, *_) = states["RouteCopy"]["Choices"]
    assert not_a_plan["Next"] == "ValidateInput"
    assert {c["Variable"] for c in not_a_plan["Not"]["And"]} == {
        "$.request",
        "$.skip",
        "$.resolveDestination",
        "$.slot",
    }
    assert states["WaitForCopySlot"]["TimestampPath"] == "$.slot.waitUntil"


def test_healthimaging_permissions_are_scoped_to_the_datastore(template: Template) -> None:
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    imaging = [s for s in statements if any(str(a).startswith("medical-imaging:") for a in _list(s["Action"]))]
    assert len(imaging) == 1
    assert sorted(_list(imaging[0]["Action"])) == [
        "medical-imaging:CopyImageSet",
        "medical-imaging:GetImageSet",
        "medical-imaging:GetImageSetMetadata",
        "medical-imaging:SearchImageSets",
    ]
    resources = json.dumps(imaging[0]["Resource"])
    assert f"datastore/{DS}" in resources and '"*"' not in resources
    assert all("medical-imaging:*" not in _list(s["Action"]) for s in statements)


def test_state_machine_logs_traces_and_is_standard(template: Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": False}),
        },
    )


def test_log_groups_keep_logs_as_long_as_the_setting_says() -> None:
    for settings, days in (({}, 365), (CUSTOM_SETTINGS, 90)):
        _, template = synthesize(**settings)
        groups = template.find_resources("AWS::Logs::LogGroup").values()
        assert [g["Properties"]["RetentionInDays"] for g in groups] == [days, days, days]  # function, workflows


def test_the_workflow_logs_to_a_vended_logs_group_named_per_stack_instance(template: Template) -> None:
    _, machine = state_machine(template.to_json())
    (destination,) = machine["Properties"]["LoggingConfiguration"]["Destinations"]
    group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    name = resolved(template.find_resources("AWS::Logs::LogGroup")[group_id]["Properties"]["LogGroupName"], {})
    assert name == "/aws/vendedlogs/states/HealthImagingCopy-CopyWorkflow-444455556666"


@pytest.mark.parametrize(
    ("partition", "console"),
    [
        ("aws", "console.aws.amazon.com"),
        ("aws-cn", "console.amazonaws.cn"),
        ("aws-us-gov", "console.amazonaws-us-gov.com"),
    ],
)
def test_console_urls_follow_the_partition(template: Template, partition: str, console: str) -> None:
    raw = template.to_json()
    machine_id, _ = state_machine(raw)
    machine_arn = f"arn:{partition}:states:{REGION}:111122223333:stateMachine:copy"
    url = resolved(
        raw["Outputs"]["StateMachineConsoleUrl"]["Value"],
        {"AWS::Partition": partition, machine_id: machine_arn},
        raw["Mappings"],
    )
    assert url == f"https://{console}/states/home?region={REGION}#/statemachines/view/{machine_arn}"


def test_outputs(template: Template) -> None:
    """What the operator CLI and docs/deploy.md's table name; the construct's own (`Default`) keep their ids."""
    assert set(template.find_outputs("*")) == {
        "StateMachineArn",
        "BackfillStateMachineArn",
        "StateMachineConsoleUrl",
        "DashboardUrl",
        "CopyFunctionName",
        "CopyFunctionLogGroupName",
        "DeadLetterQueueUrl",
        "AdmissionQueueUrl",
        "CompletionQueueUrl",
        "CompletionDeadLetterQueueUrl",
        "AlarmTopicArn",
        "CopyTableName",
        "DatastoreId",
    }
    assert template.to_json()["Outputs"]["DatastoreId"]["Value"] == DS


def test_cfn_lint_finds_no_errors(template: Template) -> None:
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(template.to_json()), config=ManualArgs(regions=["us-east-1"]))
    errors = [f"{m.rule.id}: {m.message}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_definition_passes_statelint(template: Template, tmp_path: Path) -> None:
    definition = _definition(template)
    path = tmp_path / "definition.asl.json"
    path.write_text(definition)
    # FLOAT: CDK writes BackoffRate 2.0 as the JSON number 2; the States Language and Step
    # Functions accept it, statelint's float check does not.
    result = subprocess.run(
        [Path(sys.executable).parent / "statelint", "--ignore=FLOAT", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_definition_retries_conflicts_with_jitter_and_a_delay_cap(template: Template) -> None:
    states = json.loads(_definition(template))["States"]
    retriers = {tuple(r["ErrorEquals"]): r for r in states["StartCopy"]["Retry"]}
    conflict = retriers[("CopyConflict",)]
    assert conflict["JitterStrategy"] == "FULL" and conflict["MaxDelaySeconds"] == 300 and conflict["MaxAttempts"] == 8
    # Throttled, or over the concurrent-copy quota, on its slot: back for a new slot (ReserveCopySlot counts them
    # and slows the pace), never an unpaced retry that would take the next paced call's token.
    assert all("CopyThrottled" not in errors and "CopyQuotaExceeded" not in errors for errors in retriers)
    (pushback,) = [c for c in states["StartCopy"]["Catch"] if "CopyThrottled" in c["ErrorEquals"]]
    assert pushback["ErrorEquals"] == ["CopyThrottled", "CopyQuotaExceeded"]
    assert (pushback["Next"], pushback["ResultPath"]) == ("ReserveCopySlot", "$.slot.pushback")
    assert states["ReserveCopySlot"]["Parameters"]["slot.$"] == "$.slot"
    assert ("IdempotencyAlreadyInProgressError",) in retriers
    catches = {error: c["Next"] for c in states["StartCopy"]["Catch"] for error in c["ErrorEquals"]}
    assert catches == {
        "CopyOutcomeUnknown": "ConfirmCopy",  # never a blind second call
        "CopyThrottled": "ReserveCopySlot",
        "CopyQuotaExceeded": "ReserveCopySlot",
        "InconsistentMetadata": "AlreadyForced?",
        "States.ALL": "RecordFailure",  # the copy journal, then CopyDidNotComplete
    }
    assert states["RecordFailure"]["Next"] == "CopyDidNotComplete"


def test_the_runner_executes_this_very_definition(template: Template) -> None:
    workflow = WorkflowDefinition.from_template(template.to_json())
    assert json.loads(workflow.definition) == _definition_string(template)


def _definition_string(template: Template) -> Any:
    _, machine = state_machine(template.to_json())
    return machine["Properties"]["DefinitionString"]


def _definition(template: Template) -> str:
    function = _logical_id(template, "AWS::Lambda::Function")
    version = _logical_id(template, "AWS::Lambda::Version")
    table = _logical_id(template, "AWS::DynamoDB::Table")
    refs = function_refs("arn:aws:lambda:us-east-1:1:function:f", function, version)
    return str(resolve(_definition_string(template), {"AWS::Partition": "aws", **refs, table: "copies"}))


def _logical_id(template: Template, kind: str) -> str:
    (logical_id,) = template.find_resources(kind)
    return logical_id


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- settings ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({}, "datastoreId"),
        ({"datastoreId": "ABC"}, "datastoreId"),
        ({"datastoreId": DS, "copyPolicy": "mirror"}, "copyPolicy"),
        ({"datastoreId": DS, "forcePolicy": "sometimes"}, "forcePolicy"),
        ({"datastoreId": DS, "triggerDetailTypes": "Image Set Copied"}, "triggerDetailTypes"),
        ({"datastoreId": DS, "triggerDetailTypes": "Image Set Exploded"}, "triggerDetailTypes"),
        ({"datastoreId": DS, "triggerDetailTypes": "Import Job Completed"}, "triggerDetailTypes"),
        ({"datastoreId": DS, "copyRatePerSecond": "51"}, "copyRatePerSecond"),
        ({"datastoreId": DS, "copyRatePerSecond": "0"}, "copyRatePerSecond"),
        ({"datastoreId": DS, "concurrentCopyQuota": "0"}, "concurrentCopyQuota"),
        ({"datastoreId": DS, "bulkMinimumShare": "0"}, "bulkMinimumShare"),  # a flood of imports would stop bulk work
        ({"datastoreId": DS, "bulkMinimumShare": "0.6"}, "bulkMinimumShare"),  # bulk work ahead of new imports
        ({"datastoreId": DS, "conflictRetryAttempts": "many"}, "conflictRetryAttempts"),
        ({"datastoreId": DS, "maxWaitSeconds": "5"}, "maxWaitSeconds"),
        ({"datastoreId": DS, "copyRecordRetentionDays": "14"}, "copyRecordRetentionDays"),  # < redrive window
        ({"datastoreId": DS, "workflowLogLevel": "LOUD"}, "workflowLogLevel"),
        ({"datastoreId": DS, "alarmTopicArn": "my-topic"}, "alarmTopicArn"),
        ({"datastoreId": DS, "datastoreid": DS}, "datastoreid"),
        ({"datastoreId": DS, "stacks": {"Prod": {"forcePolicy": "yes"}}}, "Prod"),
        ({"datastoreId": DS, "reservedConcurrency": "0"}, "reservedConcurrency"),
        ({"datastoreId": DS, "reservedConcurrency": "some"}, "reservedConcurrency"),
        ({"datastoreId": DS, "datastoreKmsKeyArn": "alias/imaging"}, "datastoreKmsKeyArn"),
        ({"datastoreId": DS, "region": "us-east-1", "datastoreKmsKeyArn": KEY_ARN}, "datastoreKmsKeyArn"),
        ({"datastoreId": DS, "region": "us-east-1", "alarmTopicArn": "arn:aws:sns:eu-west-1:1:t"}, "alarmTopicArn"),
        ({"datastoreId": DS, "region": "us-east-1", "alarmTopicArn": KEY_ARN.replace("kms", "sns")}, "alarmTopicArn"),
        ({"datastoreId": DS, "stacks": {"CopyProd": {"account": "1234"}}}, "account"),
        ({"datastoreId": DS, "region": "Ireland"}, "region"),
    ],
)
def test_bad_settings_are_named(context: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        stack_settings_from_context(context)


def test_the_bulk_lanes_minimum_share_reaches_the_function() -> None:
    (settings,) = stack_settings_from_context({"datastoreId": DS, "bulkMinimumShare": "0.25"}).values()
    (default,) = stack_settings_from_context({"datastoreId": DS}).values()
    assert settings.function_environment()["BULK_MINIMUM_SHARE"] == "0.25"
    assert default.bulk_minimum_share == 0.1


def test_any_rate_up_to_fifty_copies_a_second() -> None:
    (settings,) = stack_settings_from_context({"datastoreId": DS, "copyRatePerSecond": "50"}).values()
    assert settings.copy_rate_per_second == 50 and settings.function_environment()["COPY_RATE_PER_SECOND"] == "50.0"


def test_obsolete_settings_synthesize_ignored_with_a_warning_naming_each_on_its_stacks() -> None:
    """docs/operations.md, "Upgrading": a cdk.json that still sets throttleRetryIntervalSeconds or
    throttleRetryMaxDelaySeconds (gone: a pushed-back call takes a new paced slot, not a timed retry) keeps
    working; each is ignored, and synth warns about it on every stack it was given to."""
    app = build_app(
        {
            **CONTEXT,
            "throttleRetryIntervalSeconds": "30",
            "stacks": {"Dev": {}, "Prod": {"throttleRetryMaxDelaySeconds": 900, "forcePolicy": "never"}},
        },
        nag=False,
    )
    stacks = {child.node.id: child for child in app.node.children if isinstance(child, CopyPipelineStack)}
    warned = {
        name: sorted(
            str(found.entry.data)
            for found in Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("no longer applies"))
        )
        for name, stack in stacks.items()
    }
    assert {name: [message.split()[2] for message in messages] for name, messages in warned.items()} == {
        "Dev": ["throttleRetryIntervalSeconds"],
        "Prod": ["throttleRetryIntervalSeconds", "throttleRetryMaxDelaySeconds"],
    }
    assert all("paced slot" in message and "Upgrading" in message for message in warned["Prod"])
    (defaults,) = stack_settings_from_context({"datastoreId": DS}).values()
    assert stacks["Dev"].settings == defaults
    assert stacks["Prod"].settings == defaults.model_copy(update={"force_policy": "never"})
    clean = Annotations.from_stack(synthesize()[0]).find_warning("*", Match.string_like_regexp("no longer applies"))
    assert clean == []


def test_synth_warns_when_a_read_budget_binds_naming_the_quota_to_raise_and_the_rate_it_allows() -> None:
    """merge-into-primary reads GetImageSet 3 times a copy: at copyRatePerSecond 10 the default budget (24) allows 8.
    Raised to 40 with it, nothing binds but CopyImageSet, and there is no warning."""
    app = build_app(
        {
            **CONTEXT,
            "copyPolicy": "merge-into-primary",
            "copyRatePerSecond": "10",
            "stacks": {"Reads": {}, "Raised": {"getImageSetRatePerSecond": 30}},
        },
        nag=False,
    )
    stacks = {child.node.id: child for child in app.node.children if isinstance(child, CopyPipelineStack)}
    warned = {
        name: [
            str(found.entry.data)
            for found in Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("copies a second"))
        ]
        for name, stack in stacks.items()
    }
    assert warned["Raised"] == []
    (message,) = warned["Reads"]
    assert "GetImageSet 3x a copy: getImageSetRatePerSecond 24 allows 8 copies a second" in message
    assert "GetImageSet quota to be raised to 31.2 TPS and set getImageSetRatePerSecond to 30" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("getImageSetRatePerSecond", "0"),
        ("getImageSetMetadataRatePerSecond", "-1"),
        ("searchImageSetsRatePerSecond", "3"),
    ],
)
def test_a_read_budget_out_of_range_is_named(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        stack_settings_from_context({"datastoreId": DS, key: value})


def test_dash_c_strings_and_several_stacks() -> None:
    stacks = stack_settings_from_context(
        {
            "datastoreId": DS,
            "conflictRetryAttempts": "3",
            "triggerDetailTypes": "Image Set Created,Image Set Updated",
            "stacks": {"Dev": {}, "Prod": {"datastoreId": "f" * 32, "forcePolicy": "never"}},
        }
    )
    assert stacks["Dev"].conflict_retry_attempts == 3
    assert stacks["Dev"].trigger_detail_types == ("Image Set Created", "Image Set Updated")
    assert (stacks["Prod"].datastore_id, stacks["Prod"].force_policy) == ("f" * 32, "never")


def as_the_cdk_cli_passes_it(**dash_c: str) -> dict[str, object]:
    """The context `npx cdk synth -c key=value ...` passes app.py in CDK_CONTEXT_JSON: cdk.json's first, the `-c`
    values as strings, then the keys the CLI adds itself (aws-cdk 2.1148, read from its environment), plus what
    cdk.context.json and the CLI's acknowledgements may hold. offline.template.synthesize runs app.py with it."""
    root = Path(__file__).resolve().parent.parent
    return {
        **json.loads((root / "cdk.json").read_text())["context"],
        **dash_c,
        "aws:cdk:enable-path-metadata": True,
        "aws:cdk:enable-asset-metadata": True,
        "aws:cdk:version-reporting": True,
        "@aws-cdk/core:failSynthOnValidationErrors": False,
        "acknowledged-issue-numbers": [32775],
        "availability-zones:account=111122223333:region=eu-west-1": ["eu-west-1a"],
    }


def test_app_py_stops_on_a_mistyped_setting_naming_it_and_the_setting_it_is_likely_meant_to_be() -> None:
    """`npx cdk synth -c copyRatePerSecnd=10` used to synthesize at the default 0.24/s: app.py read only the keys
    it knew. Now every key is read, top-level and each stack's, CDK's own left alone."""
    stacks = json.dumps({"CopyProd": {"forcepolicy": "never"}, "CopyDev": {"throttleRetryIntervalSeconds": "5"}})
    with pytest.raises(RuntimeError) as refused:
        synthesize_app_py(as_the_cdk_cli_passes_it(datastoreId=DS, copyRatePerSecnd="10", stacks=stacks))
    assert str(refused.value).strip() == (
        "app.py did not synthesize (exit 1): cdk.json / -c settings: unknown setting(s): copyRatePerSecnd"
        " (did you mean copyRatePerSecond?);"
        " stacks.CopyProd.forcepolicy (did you mean forcePolicy?) (every setting: docs/configuration.md)"
    )


def test_python_app_py_reports_bad_settings_clearly_and_synthesizes_good_ones() -> None:
    root = Path(__file__).resolve().parent.parent
    bad = subprocess.run(
        [sys.executable, "app.py"],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env={**os.environ, "HEALTHIMAGING_COPY_CONTEXT": "{}"},
    )
    assert bad.returncode != 0
    assert "datastoreId" in bad.stderr
    template = synthesize_app_py(as_the_cdk_cli_passes_it(datastoreId=DS))  # with every key CDK's CLI adds
    assert any(r["Type"] == "AWS::StepFunctions::StateMachine" for r in template["Resources"].values())


def test_several_stacks_deploy_to_their_own_accounts_with_their_own_settings() -> None:
    # `cdk deploy CopyProd --profile prod`: each stack carries its account and Region (cdk-nag runs too).
    app = build_app(
        {
            **CONTEXT,
            "reservedConcurrency": "10",
            "stacks": {
                "CopyDev": {"account": "111122223333", "region": "eu-west-1"},
                "CopyProd": {
                    "datastoreId": "f" * 32,
                    "forcePolicy": "never",
                    "reservedConcurrency": 50,
                    "account": "444455556666",
                    "region": "us-east-1",
                },
            },
        }
    )
    stacks = {s.stack_name: s for s in app.synth().stacks}
    expected = {
        "CopyDev": ("111122223333", "eu-west-1", DS, "same-patient", 10),
        "CopyProd": ("444455556666", "us-east-1", "f" * 32, "never", 50),
    }
    assert sorted(stacks) == sorted(expected)
    for name, (account, region, datastore, force_policy, reserved) in expected.items():
        stack = stacks[name]
        assert (stack.environment.account, stack.environment.region) == (account, region)
        (function,) = resources(stack.template, "AWS::Lambda::Function").values()
        variables = function["Properties"]["Environment"]["Variables"]
        assert (variables["DATASTORE_ID"], variables["FORCE_POLICY"]) == (datastore, force_policy)
        assert function["Properties"]["ReservedConcurrentExecutions"] == reserved
        assert f":medical-imaging:{region}:{account}:datastore/{datastore}" in json.dumps(stack.template)
        alarm_names = {
            a["Properties"]["AlarmName"] for a in resources(stack.template, "AWS::CloudWatch::Alarm").values()
        }
        assert f"{name}-ExecutionsFailed" in alarm_names


def test_a_datastore_key_is_usable_by_the_function_for_what_healthimaging_needs_only() -> None:
    _, template = synthesize(**CUSTOM_SETTINGS)
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if KEY_ARN in _list(statement["Resource"])
    ]
    assert statements == [
        {
            "Sid": "UseTheDatastoreKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": KEY_ARN,
        }
    ]
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    (roles,) = (
        p["Properties"]["Roles"]
        for p in template.find_resources("AWS::IAM::Policy").values()
        if statements[0] in p["Properties"]["PolicyDocument"]["Statement"]
    )
    assert roles == [{"Ref": function["Properties"]["Role"]["Fn::GetAtt"][0]}]


def test_every_task_times_out_just_after_the_function_does(template: Template) -> None:
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    states = json.loads(_definition(template))["States"]
    timeouts = {name: state.get("TimeoutSeconds") for name, state in states.items() if state["Type"] == "Task"}
    assert len(timeouts) == 9
    # AwaitCopy is not the function: it waits for the completion event, its fallback wait at most.
    assert timeouts.pop("AwaitCopy") is None and states["AwaitCopy"]["TimeoutSecondsPath"] == "$.copy.nextPollSeconds"
    assert set(timeouts.values()) == {function["Properties"]["Timeout"] + 10}


def test_the_table_indexes_are_the_ones_the_function_and_its_tests_use(template: Template) -> None:
    from function_stubs import COPY_TABLE_SCHEMA

    from copier.copy_record import BY_DESTINATION_INDEX
    from copier.journal import BACKLOG_INDEX, BY_SOURCE_INDEX, BY_STATUS_INDEX

    (table,) = template.find_resources("AWS::DynamoDB::Table").values()
    indexes = {index["IndexName"]: index for index in table["Properties"]["GlobalSecondaryIndexes"]}
    assert set(indexes) == {BY_DESTINATION_INDEX, BY_SOURCE_INDEX, BY_STATUS_INDEX, BACKLOG_INDEX}
    for expected in COPY_TABLE_SCHEMA["GlobalSecondaryIndexes"]:
        index = indexes[expected["IndexName"]]
        assert (index["KeySchema"], index["Projection"]) == (expected["KeySchema"], expected["Projection"])
    assert sorted(table["Properties"]["AttributeDefinitions"], key=str) == sorted(
        COPY_TABLE_SCHEMA["AttributeDefinitions"], key=str
    )


def test_copy_records_outlive_the_queues(template: Template) -> None:
    """A standard queue's dead-letter queue counts retention from the first enqueue: a message lives at most
    the longest retention, plus EventBridge's day of retries."""
    longest = max(
        q["Properties"]["MessageRetentionPeriod"] for q in template.find_resources("AWS::SQS::Queue").values()
    )
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    retention_days = int(function["Properties"]["Environment"]["Variables"]["COPY_RECORD_RETENTION_DAYS"])
    assert retention_days * 86_400 > longest + 86_400


def test_inconsistent_metadata_on_a_forced_request_can_never_loop_through_the_force_branch(template: Template) -> None:
    states = json.loads(_definition(template))["States"]
    (forced,) = states["AlreadyForced?"]["Choices"]
    assert forced == {"Variable": "$.request.force", "BooleanEquals": True, "Next": "StillInconsistentAfterForce"}
    assert states["StillInconsistentAfterForce"]["Type"] == "Fail"
    assert states["AlreadyForced?"]["Default"] == "AuthoriseForce"


def test_reconciliation_and_the_dispatcher_run_on_schedules(template: Template) -> None:
    for schedule, action in (("rate(15 minutes)", "reconcile"), ("rate(1 minute)", "dispatch")):
        rules = template.find_resources("AWS::Events::Rule", {"Properties": {"ScheduleExpression": schedule}})
        ((_, rule),) = rules.items()
        (target,) = rule["Properties"]["Targets"]
        assert json.loads(target["Input"]) == {"action": action}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0  # a failed run is the next run's work


def test_only_the_dispatcher_may_start_copies_and_the_backfill_workflow_only_itself(template: Template) -> None:
    raw = template.to_json()
    copy_name = state_machine(raw, "copy")[1]["Properties"]["StateMachineName"]
    backfill_id, backfill = state_machine(raw, "backfill")
    backfill_role = backfill["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    starts = [
        (policy["Properties"]["Roles"], json.dumps(statement["Resource"]), statement.get("Sid"))
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in _list(policy["Properties"]["PolicyDocument"]["Statement"])
        if "states:StartExecution" in _list(statement["Action"])
    ]
    assert len(starts) == 2
    (copies,) = [s for s in starts if s[2] == "StartPendingCopies"]
    (backfills,) = [s for s in starts if s[2] != "StartPendingCopies"]
    assert f":stateMachine:{copy_name}" in copies[1]
    assert backfills[0] == [{"Ref": backfill_role}]  # the backfill workflow's own role, its next execution
    assert f':stateMachine:{backfill["Properties"]["StateMachineName"]}"' in backfills[1]
    assert backfill_id


def test_reconciliation_can_be_turned_off() -> None:
    app = build_app({**CONTEXT, "reconciliationIntervalMinutes": "0"}, nag=False)
    off = Template.from_stack(app.node.find_child("HealthImagingCopy"))  # type: ignore[arg-type]
    schedules = off.find_resources("AWS::Events::Rule", {"Properties": {"ScheduleExpression": Match.any_value()}})
    # The dispatcher's and the version pruning's; no sweep.
    assert sorted(rule["Properties"]["ScheduleExpression"] for rule in schedules.values()) == [
        "rate(1 day)",
        "rate(1 minute)",
    ]


def test_a_backfill_that_fails_or_times_out_raises_an_alarm_and_a_stop_does_not(template: Template) -> None:
    backfills = template.find_resources(
        "AWS::StepFunctions::StateMachine",
        {"Properties": {"StateMachineName": Match.string_like_regexp("backfill")}},
    )
    (backfill_id,) = backfills
    (alarm,) = [
        a
        for a in resources(template.to_json(), "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"].endswith("-BackfillEnded")
    ]
    watched = {
        (m["MetricStat"]["Metric"]["MetricName"], json.dumps(m["MetricStat"]["Metric"]["Dimensions"]))
        for m in alarm["Properties"]["Metrics"]
        if "MetricStat" in m
    }
    dimension = json.dumps([{"Name": "StateMachineArn", "Value": {"Ref": backfill_id}}])
    assert watched == {("ExecutionsFailed", dimension), ("ExecutionsTimedOut", dimension)}
    assert alarm["Properties"]["Threshold"] == 1 and alarm["Properties"]["AlarmActions"]


def test_a_dispatcher_that_stops_running_raises_an_alarm(template: Template) -> None:
    """Every run writes LiveBacklogLateSeconds (0 when the live lane is empty), and only the dispatcher does: its
    absence is the alarm."""
    (alarm,) = [
        a
        for a in resources(template.to_json(), "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"].endswith("-DispatcherSilent")
    ]
    properties = alarm["Properties"]
    assert (properties["MetricName"], properties["Statistic"], properties["Period"]) == (
        "LiveBacklogLateSeconds",
        "SampleCount",
        300,
    )
    assert (properties["ComparisonOperator"], properties["Threshold"], properties["EvaluationPeriods"]) == (
        "LessThanThreshold",
        1,
        3,
    )
    assert properties["TreatMissingData"] == "breaching" and properties["AlarmActions"]


def test_the_backlog_alarms_watch_how_late_each_lanes_oldest_copy_is_and_only_the_live_lane_pages(
    template: Template,
) -> None:
    """A 1M backfill's last copy waits 46 days at 0.24/s, on time: the alarms are on each lane's lateness (what
    the copies admitted before it do not explain at the lane's promised rate), an hour of it for half an hour.
    New imports late page someone; bulk work late against its share is information (no action)."""
    alarms = {
        a["Properties"]["AlarmName"].split("-")[-1]: a["Properties"]
        for a in resources(template.to_json(), "AWS::CloudWatch::Alarm").values()
    }
    assert not {"BacklogAge", "BacklogLate"} & set(alarms)
    for name, metric in (("LiveBacklogLate", "LiveBacklogLateSeconds"), ("BulkBacklogLate", "BulkBacklogLateSeconds")):
        late = alarms[name]
        assert (late["MetricName"], late["Statistic"], late["Period"], late["EvaluationPeriods"]) == (
            metric,
            "Maximum",
            900,
            2,
        )
        assert (late["ComparisonOperator"], late["Threshold"]) == ("GreaterThanOrEqualToThreshold", 3600)
    assert alarms["LiveBacklogLate"]["AlarmActions"] and "AlarmActions" not in alarms["BulkBacklogLate"]


def test_copies_carried_by_their_fallback_and_await_copy_failing_raise_alarms(template: Template) -> None:
    """Events not arriving: over half of the copies completed in each of three hours found by their fallback look
    (no event woke them), hours of fewer than ten copies deciding nothing. AwaitCopy's write failing: in two
    quarter-hours running. The completion queue's dead letters, as the admission queue's."""
    alarms = {
        a["Properties"]["AlarmName"].split("-")[-1]: a["Properties"]
        for a in resources(template.to_json(), "AWS::CloudWatch::Alarm").values()
    }
    fallback = alarms["CompletionEventsNotArriving"]
    (expression,) = [m for m in fallback["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "IF(FILL(completed, 0) >= 10, 100 * FILL(missed, 0) / FILL(completed, 0), 0)"
    watched = {
        m["Id"]: (m["MetricStat"]["Metric"]["MetricName"], m["MetricStat"]["Stat"], m["MetricStat"]["Period"])
        for m in fallback["Metrics"]
        if "MetricStat" in m
    }
    assert watched == {"missed": ("CompletionEventsMissed", "Sum", 3600), "completed": ("CopiesCompleted", "Sum", 3600)}
    assert (fallback["Threshold"], fallback["EvaluationPeriods"], fallback["ComparisonOperator"]) == (
        50,
        3,
        "GreaterThanOrEqualToThreshold",
    )
    failing = alarms["AwaitCopyFailing"]
    assert (failing["MetricName"], failing["Statistic"], failing["Period"]) == ("AwaitCopyFailures", "Sum", 900)
    assert (failing["Threshold"], failing["EvaluationPeriods"]) == (1, 2)
    completion_dlq = alarms["CompletionDeadLetters"]
    assert completion_dlq["Dimensions"] == [
        {
            "Name": "QueueName",
            "Value": {"Fn::GetAtt": [_queue(template, "DeadLetterQueue", "CopyCompletion"), "QueueName"]},
        }
    ]
    assert all(alarm["AlarmActions"] for alarm in (fallback, failing, completion_dlq))


def test_what_cdk_destroy_keeps_and_what_it_deletes(template: Template) -> None:
    """docs/operations.md, "Tearing it down": the journal and copy records (table), the key that encrypts
    them, the logs and the admission queues' events outlive the stack; the rest goes with it, the completion
    queues too (their events only wake executions, which the stack's deletion stops)."""
    kept = {"AWS::DynamoDB::Table": 1, "AWS::KMS::Key": 1, "AWS::Logs::LogGroup": 3, "AWS::SQS::Queue": 2}
    found: dict[str, int] = {}
    for logical_id, resource in template.to_json()["Resources"].items():
        policies = (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy"))
        if resource["Type"] in kept and not logical_id.startswith("CopyCompletion"):
            assert policies == ("Retain", "Retain"), logical_id
            found[resource["Type"]] = found.get(resource["Type"], 0) + 1
        elif resource["Type"] != "AWS::Lambda::Version":  # old versions: docs/operations.md, "Upgrading"
            assert "Retain" not in policies, logical_id
    assert found == kept
