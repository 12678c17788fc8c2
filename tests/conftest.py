"""Shared fixtures (helpers live in function_stubs.py and workflow.py). The function's modules
are imported fresh per test inside moto, with botocore Stubbers on its real medical-imaging clients."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from captured_output import CAPTURED_OUTPUT
from function_stubs import COPY_TABLE_SCHEMA, FUNCTION_ENV, TABLE, Function, load_function
from moto import mock_aws
from workflow import Study, seed_study

from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for _, content in report.sections:
        CAPTURED_OUTPUT.append(content)
    if report.longreprtext:
        CAPTURED_OUTPUT.append(report.longreprtext)


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never real AWS: fake credentials and a fixed region for every test."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def function_env() -> dict[str, str]:
    """Override in a test module (or parametrize) to change the function's settings."""
    return dict(FUNCTION_ENV)


@pytest.fixture
def function(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Function]:
    for key, value in function_env.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("dynamodb").create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST", **COPY_TABLE_SCHEMA)
        handler, modules = load_function()
        reads = Stubber(modules.healthimaging.read_client())
        copies = Stubber(modules.healthimaging.copy_client())
        with reads, copies:
            yield Function(handler, modules, reads, copies)


# --- the offline pipeline ------------------------------------------------------------------
@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def emulator(clock: VirtualClock) -> HealthImagingEmulator:
    return HealthImagingEmulator(clock=clock.now)


@pytest.fixture
def study(emulator: HealthImagingEmulator) -> Study:
    return seed_study(emulator)
