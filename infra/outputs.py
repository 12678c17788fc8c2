"""The names an operator needs, as the stack's CloudFormation outputs: the operator CLI reads them
(ops/stack_outputs.py), the console shows them.

Each HealthImagingCopy construct publishes its own, their logical ids prefixed with its path in the stack
(`naming.output_prefix`): `CopyTableName` for this app's construct (`Default`, left out, as in every release),
`ResearchCopyTableName` for `HealthImagingCopy(stack, "Research")` in a host app, so several in one stack
never collide and the CLI tells them apart (`--stack Imaging/Research`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import CfnMapping, CfnOutput, Stack

from . import naming

if TYPE_CHECKING:
    from .healthimaging_copy import HealthImagingCopy

# The AWS Management Console's domain in each partition where HealthImaging could run.
CONSOLE_DOMAINS = {
    "aws": {"domain": "console.aws.amazon.com"},
    "aws-cn": {"domain": "console.amazonaws.cn"},
    "aws-us-gov": {"domain": "console.amazonaws-us-gov.com"},
}


def publish(pipeline: HealthImagingCopy) -> None:
    stack = Stack.of(pipeline)
    prefix = naming.output_prefix(pipeline)
    # The partition's URL suffix is not its console's domain (aws-cn: amazonaws.com.cn, the console
    # is console.amazonaws.cn), hence a mapping.
    console = CfnMapping(pipeline, "ConsoleDomain", mapping=CONSOLE_DOMAINS, lazy=True).find_in_map(
        stack.partition, "domain"
    )
    state_machine_arn = pipeline.state_machine.state_machine_arn
    values = {
        "StateMachineArn": state_machine_arn,
        "BackfillStateMachineArn": pipeline.backfill_state_machine.state_machine_arn,
        "StateMachineConsoleUrl": f"https://{console}/states/home?region={stack.region}"
        f"#/statemachines/view/{state_machine_arn}",
        "DashboardUrl": f"https://{console}/cloudwatch/home?region={stack.region}"
        f"#dashboards/dashboard/{pipeline.dashboard.dashboard_name}",
        "CopyFunctionName": pipeline.function.function_name,
        "CopyFunctionLogGroupName": pipeline.copy_function.log_group.log_group_name,
        "DeadLetterQueueUrl": pipeline.dead_letter_queue.queue_url,
        "AdmissionQueueUrl": pipeline.admission_queue.queue_url,
        "CompletionQueueUrl": pipeline.completion_queue.queue_url,
        "CompletionDeadLetterQueueUrl": pipeline.completion_dead_letter_queue.queue_url,
        "AlarmTopicArn": pipeline.alarm_topic.topic_arn,
        "CopyTableName": pipeline.table.table_name,
        "DatastoreId": pipeline.settings.datastore_id,
    }
    for name, value in values.items():
        output = CfnOutput(pipeline, name, value=value)
        output.override_logical_id(f"{prefix}{name}")
