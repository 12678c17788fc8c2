"""The copy Lambda: Python 3.13 on arm64, Powertools bundled locally (no Docker at synth)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from . import metrics
from .function_bundle import LOCK, TARGET_PLATFORM
from .log_groups import retention

LAMBDA_SOURCE = Path(__file__).resolve().parent.parent / "lambda"
RUNTIME = lambda_.Runtime.PYTHON_3_13
# Never bundled, and never hashed: bytecode a test run or an editor left under lambda/ must not change the asset's
# hash, and with it the function version's logical id, from one machine to the next.
NOT_BUNDLED = ("__pycache__", "*.pyc")


@jsii.implements(ILocalBundling)
class PipBundling:
    """Install the locked wheels (infra/function-requirements.txt: lambda/requirements.txt resolved for
    manylinux2014 aarch64 / CPython 3.13, hashes checked, nothing else resolved), then the code.

    The botocore that comes with it (aws-xray-sdk needs it) is locked to the one the tests ran with,
    rather than relying on whichever version the runtime ships. No bytecode: pip would compile it
    for the Python running the synth, not 3.13."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--no-deps", "--require-hashes", "--no-compile", "--requirement", str(LOCK),
                "--target", output_dir, *TARGET_PLATFORM,
            ],
            check=True,
        )  # fmt: skip
        shutil.copytree(
            LAMBDA_SOURCE,
            output_dir,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(*NOT_BUNDLED, "requirements.txt"),
        )
        return True


class CopyFunction(Construct):
    # Each step is a few HealthImaging and DynamoDB calls; the workflow's task timeouts follow this.
    TIMEOUT = Duration.seconds(60)
    # Metadata documents are read as a stream (lambda/copier/metadata.py): python -m benchmarks.metadata.
    MEMORY_SIZE_MB = 512

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: dict[str, str],
        key: kms.IKey,
        log_retention_days: int,
        reserved_concurrency: int | None,
        service: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            retention=retention(log_retention_days),
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # An explicit role: logs scoped to this log group instead of the broad managed policy.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(LAMBDA_SOURCE),
                exclude=list(NOT_BUNDLED),
                bundling=BundlingOptions(image=RUNTIME.bundling_image, local=PipBundling()),
            ),
            role=self.role,
            memory_size=self.MEMORY_SIZE_MB,
            timeout=self.TIMEOUT,
            # When set, bounds Lambda concurrency (and so DynamoDB and HealthImaging reads) in a burst;
            # throttled invocations are retried by the workflow (Lambda.TooManyRequestsException).
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            # Settings only, but encrypted with the stack's key like everything else (checkov CKV_AWS_173).
            environment_encryption=key,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": service,
                "POWERTOOLS_METRICS_NAMESPACE": metrics.NAMESPACE,
            },
            # Kept when the next deploy publishes another: executions in flight go on invoking theirs
            # (lambda/copier/versions.py deletes them once none can).
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
        )
        # What the state machines invoke: the version published with their definition, so an execution runs
        # the code it started with. The schedules and the admission queue invoke the function itself: the latest.
        self.version = self.function.current_version
