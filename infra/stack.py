"""The app's stack: one HealthImagingCopy construct (infra/healthimaging_copy.py), whose outputs name what
the operator CLI takes (infra/outputs.py).

The construct's id is `Default`, which CDK leaves out of logical ids and infra/naming.py out of physical
names: the stack's resources and outputs keep the logical ids and names of the releases before the construct
existed, so an upgrade replaces nothing (tests/test_upgrade.py compares them with the last release's).
"""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from .healthimaging_copy import HealthImagingCopy
from .settings import StackSettings


class CopyPipelineStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.pipeline = HealthImagingCopy(self, "Default", **settings.construct_props())
