"""Shared fixtures. The function's modules are imported fresh per test inside moto, with
botocore Stubbers on its real medical-imaging clients (parameters checked against the model)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator

DATASTORE = seed.DATASTORE_ID
SOURCE = "a" * 32
DESTINATION = "b" * 32
TABLE = "copy-idempotency"
FUNCTION_ENV = {
    "DATASTORE_ID": DATASTORE,
    "IDEMPOTENCY_TABLE": TABLE,
    "COPY_POLICY": "snapshot",
    "FORCE_POLICY": "same-patient",
    "POWERTOOLS_SERVICE_NAME": "healthimaging-copy",
    "POWERTOOLS_METRICS_NAMESPACE": "HealthImagingCopy",
    "POWERTOOLS_TRACE_DISABLED": "1",
}

# Every captured output of the suite, read by tests/test_zz_no_phi.py.
CAPTURED_OUTPUT: list[str] = []


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


@dataclass
class Function:
    """The copy function's modules, loaded for one test, with stubbed HealthImaging clients."""

    handler: ModuleType
    modules: SimpleNamespace
    reads: Stubber
    copies: Stubber

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.handler.handler(event, lambda_context())


def lambda_context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="copy-image-set",
        memory_limit_in_mb=512,
        aws_request_id="req-1",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:copy-image-set",
        get_remaining_time_in_millis=lambda: 60_000,
    )


def load_function() -> tuple[ModuleType, SimpleNamespace]:
    """Import the handler fresh: settings, clients and idempotency are module-level, as in Lambda."""
    for name in [m for m in sys.modules if m in ("handler", "copier") or m.startswith("copier.")]:
        del sys.modules[name]
    handler = importlib.import_module("handler")
    names = (
        "copy_start",
        "copy_status",
        "destination",
        "errors",
        "force_policy",
        "healthimaging",
        "intake",
        "ledger",
        "models",
        "pacing",
        "settings",
        "steps",
        "clock",
    )
    modules = SimpleNamespace(**{n: importlib.import_module(f"copier.{n}") for n in names})
    return handler, modules


@pytest.fixture
def function_env() -> dict[str, str]:
    """Override in a test module (or parametrize) to change the function's settings."""
    return dict(FUNCTION_ENV)


@pytest.fixture
def function(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Function]:
    for key, value in function_env.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        )
        handler, modules = load_function()
        reads = Stubber(modules.healthimaging.read_client())
        copies = Stubber(modules.healthimaging.copy_client())
        with reads, copies:
            yield Function(handler, modules, reads, copies)


def image_set(
    image_set_id: str,
    *,
    version: str = "1",
    state: str = "ACTIVE",
    workflow: str = "CREATED",
    message: str | None = None,
    forced: bool = False,
    is_primary: bool = True,
) -> dict[str, Any]:
    """A GetImageSet answer."""
    answer: dict[str, Any] = {
        "datastoreId": DATASTORE,
        "imageSetId": image_set_id,
        "versionId": version,
        "imageSetState": state,
        "imageSetWorkflowStatus": workflow,
        "isPrimary": is_primary,
    }
    if message:
        answer["message"] = message
    if forced:
        answer["overrides"] = {"forced": True}
    return answer


def copy_answer(source: str, destination: str, *, version: str = "1") -> dict[str, Any]:
    """A CopyImageSet answer."""
    return {
        "datastoreId": DATASTORE,
        "sourceImageSetProperties": {
            "imageSetId": source,
            "latestVersionId": "1",
            "imageSetState": "LOCKED",
            "imageSetWorkflowStatus": "COPYING_WITH_READ_ONLY_ACCESS",
        },
        "destinationImageSetProperties": {
            "imageSetId": destination,
            "latestVersionId": version,
            "imageSetState": "LOCKED",
            "imageSetWorkflowStatus": "COPYING",
        },
    }


def step(action: str, **fields: Any) -> dict[str, Any]:
    return {"action": action, "executionId": "arn:aws:states:us-east-1:123456789012:execution:copy:test", **fields}


def emf_metrics(output: str) -> dict[str, float]:
    """Sum of every EMF metric printed in output."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith('{"_aws"'):
            document = json.loads(line)
            for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(document[metric["Name"]])
    return totals


# --- the offline pipeline ------------------------------------------------------------------
@dataclass
class Study:
    primary: str
    consistent: str
    inconsistent: str
    other_patient: str


def seed_study(emulator: HealthImagingEmulator) -> Study:
    emulator.create_datastore(DATASTORE)
    return Study(
        primary=emulator.seed_image_set(DATASTORE, seed.image_set_metadata(patient_number=1, study=1, series=[1, 2])),
        consistent=emulator.seed_image_set(
            DATASTORE, seed.image_set_metadata(patient_number=1, study=1, series=[3]), is_primary=False
        ),
        inconsistent=emulator.seed_image_set(
            DATASTORE,
            seed.image_set_metadata(patient_number=1, study=1, series=[4], study_description="SYNTHETIC MR"),
            is_primary=False,
        ),
        other_patient=emulator.seed_image_set(
            DATASTORE,
            seed.image_set_metadata(patient_number=1, study=1, series=[5], name_suffix="^MISFILED"),
            is_primary=False,
        ),
    )


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def emulator(clock: VirtualClock) -> HealthImagingEmulator:
    return HealthImagingEmulator(clock=clock.now)


@pytest.fixture
def study(emulator: HealthImagingEmulator) -> Study:
    return seed_study(emulator)
