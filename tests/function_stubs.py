"""The copy function loaded for one test, with botocore Stubbers on its real medical-imaging
clients (parameters checked against the service model), and the answers the stubs give."""

from __future__ import annotations

import gzip
import importlib
import io
import json
import sys
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

from botocore.response import StreamingBody
from botocore.stub import Stubber

from offline import seed

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

# The table's keys and index as infra/idempotency_table.py declares them (tests/test_stack.py checks they agree).
COPY_TABLE_SCHEMA: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": "id", "AttributeType": "S"},
        {"AttributeName": "destinationImageSetId", "AttributeType": "S"},
        {"AttributeName": "destinationVersionId", "AttributeType": "S"},
        {"AttributeName": "journalSourceId", "AttributeType": "S"},
        {"AttributeName": "journalStatus", "AttributeType": "S"},
        {"AttributeName": "updatedAt", "AttributeType": "N"},
        {"AttributeName": "backlogLane", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "byDestination",
            "KeySchema": [
                {"AttributeName": "destinationImageSetId", "KeyType": "HASH"},
                {"AttributeName": "destinationVersionId", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": "journalBySource",
            "KeySchema": [{"AttributeName": "journalSourceId", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": "journalByStatus",
            "KeySchema": [
                {"AttributeName": "journalStatus", "KeyType": "HASH"},
                {"AttributeName": "updatedAt", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": "journalBacklog",
            "KeySchema": [
                {"AttributeName": "backlogLane", "KeyType": "HASH"},
                {"AttributeName": "updatedAt", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ],
}


@dataclass
class Function:
    """The copy function's modules, loaded for one test, with stubbed HealthImaging clients."""

    handler: ModuleType
    modules: SimpleNamespace
    reads: Stubber
    copies: Stubber

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.handler.handler(event, lambda_context())


def healthimaging_calls(function: Function) -> list[str]:
    """Every HealthImaging operation the function calls from now on, in order: counted as the call is made,
    before a Stubber answers it (or refuses it, with nothing queued)."""
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    for client in (function.modules.healthimaging.read_client(), function.modules.healthimaging.copy_client()):
        client.meta.events.register_first("provide-client-params.medical-imaging", count)
    return calls


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
        "clock",
        "confirm",
        "copy_record",
        "copy_start",
        "copy_status",
        "destination",
        "dicom",
        "errors",
        "force_policy",
        "healthimaging",
        "inconsistency",
        "intake",
        "journal",
        "models",
        "pacing",
        "settings",
        "steps",
        "table",
    )
    modules = SimpleNamespace(**{n: importlib.import_module(f"copier.{n}") for n in names})
    return handler, modules


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


def emf_documents(output: str) -> list[dict[str, Any]]:
    """Every EMF document printed in output (one per flush), in order."""
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def emf_metrics(output: str) -> dict[str, float]:
    """Sum of every EMF metric printed in output."""
    totals: dict[str, float] = {}
    for document in emf_documents(output):
        for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(document[metric["Name"]])
    return totals


def expect_metadata(function: Function, image_set_id: str, document: dict[str, Any], **params: str) -> None:
    """A GetImageSetMetadata answer (gzip JSON, as the service sends it)."""
    blob = gzip.compress(json.dumps(document).encode())
    function.reads.add_response(
        "get_image_set_metadata",
        {
            "imageSetMetadataBlob": StreamingBody(io.BytesIO(blob), len(blob)),
            "contentType": "application/json",
            "contentEncoding": "gzip",
        },
        {"datastoreId": DATASTORE, "imageSetId": image_set_id, **params},
    )
