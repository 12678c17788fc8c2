"""The app's stack: one HealthImagingCopy construct (infra/healthimaging_copy.py) and the outputs ops.cli takes.

The construct's id is `Default`, which CDK leaves out of logical ids and infra/naming.py out of physical
names: the stack's resources keep the logical ids and names of the releases before the construct existed,
so an upgrade replaces nothing (tests/test_upgrade.py compares them with the last release's).
"""

from __future__ import annotations

from aws_cdk import CfnMapping, CfnOutput, Stack
from constructs import Construct

from .healthimaging_copy import HealthImagingCopy
from .settings import StackSettings

# The AWS Management Console's domain in each partition where HealthImaging could run.
CONSOLE_DOMAINS = {
    "aws": {"domain": "console.aws.amazon.com"},
    "aws-cn": {"domain": "console.amazonaws.cn"},
    "aws-us-gov": {"domain": "console.amazonaws-us-gov.com"},
}


class CopyPipelineStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.pipeline = HealthImagingCopy(self, "Default", **settings.construct_props())
        self._outputs()

    def _outputs(self) -> None:
        # The partition's URL suffix is not its console's domain (aws-cn: amazonaws.com.cn, the console
        # is console.amazonaws.cn), hence a mapping.
        console = CfnMapping(self, "ConsoleDomain", mapping=CONSOLE_DOMAINS, lazy=True).find_in_map(
            self.partition, "domain"
        )
        pipeline = self.pipeline
        state_machine = pipeline.state_machine
        CfnOutput(self, "StateMachineArn", value=state_machine.state_machine_arn)
        CfnOutput(self, "BackfillStateMachineArn", value=pipeline.backfill_state_machine.state_machine_arn)  # ops.cli
        CfnOutput(
            self,
            "StateMachineConsoleUrl",
            value=f"https://{console}/states/home?region={self.region}"
            f"#/statemachines/view/{state_machine.state_machine_arn}",
        )
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://{console}/cloudwatch/home?region={self.region}"
            f"#dashboards/dashboard/{pipeline.dashboard.dashboard_name}",
        )
        CfnOutput(self, "CopyFunctionName", value=pipeline.function.function_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=pipeline.dead_letter_queue.queue_url)
        CfnOutput(self, "AdmissionQueueUrl", value=pipeline.admission_queue.queue_url)  # ops.cli redrive
        CfnOutput(self, "CopyTableName", value=pipeline.table.table_name)  # ops.cli resolve
