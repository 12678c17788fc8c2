"""Cold-start cost and API calls of one copy.

Prints (1) the handler's import time as a ratio to a bare `import boto3` handler, both
measured here in fresh interpreters, median of N runs; (2) the AWS API calls one happy
snapshot copy makes, by service and operation, through the local pipeline.

    python -m benchmarks.handler_import [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "DATASTORE_ID": "0123456789abcdef0123456789abcdef",
    "IDEMPOTENCY_TABLE": "t",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "POWERTOOLS_SERVICE_NAME": "healthimaging-copy",
    "POWERTOOLS_TRACE_DISABLED": "1",
}
BASELINE = "import boto3\nclient = boto3.client('medical-imaging')\ndef handler(event, context):\n    return event\n"


def import_seconds(module_dir: str, module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **ENV, "PYTHONPATH": module_dir},
    )
    return float(result.stdout.strip().splitlines()[-1])


def api_calls_of_one_copy() -> Counter[str]:
    from offline import seed
    from offline.clock import VirtualClock
    from offline.emulator import HealthImagingEmulator
    from offline.runner import LocalPipeline
    from offline.template import WorkflowDefinition, synthesize

    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now)
    emulator.create_datastore(seed.DATASTORE_ID)
    source = emulator.seed_image_set(seed.DATASTORE_ID, seed.image_set_metadata(patient_number=1, study=1, series=[1]))
    workflow = WorkflowDefinition.from_template(synthesize({"datastoreId": seed.DATASTORE_ID}))
    with LocalPipeline(workflow, emulator, clock) as pipeline:
        calls = pipeline.count_api_calls()
        record = pipeline.run(seed.image_set_created_event(seed.DATASTORE_ID, source))
        assert record.status == "SUCCEEDED", record.cause
        calls["lambda:Invoke (state machine -> function)"] = pipeline.lambda_calls
        calls["states:state transitions"] = record.transitions
    return calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as baseline_dir:
        Path(baseline_dir, "bare_handler.py").write_text(BASELINE)
        bare, ours = [], []
        for _ in range(runs):  # interleaved, so machine noise hits both alike
            bare.append(import_seconds(baseline_dir, "bare_handler"))
            ours.append(import_seconds(str(ROOT / "lambda"), "handler"))
    print(f"Handler import (median of {runs} fresh interpreters, Python {sys.version.split()[0]}):")
    print(f"  bare boto3 handler  {statistics.median(bare) * 1000:8.1f} ms")
    print(f"  copy handler        {statistics.median(ours) * 1000:8.1f} ms")
    print(f"  ratio               {statistics.median(ours) / statistics.median(bare):8.2f} x")
    started = time.perf_counter()
    calls = api_calls_of_one_copy()
    print(f"\nAPI calls for one happy snapshot copy (local pipeline, {time.perf_counter() - started:.1f} s):")
    for name, count in sorted(calls.items()):
        print(f"  {name:48} {count:4d}")
    aws = sum(count for name, count in calls.items() if not name.startswith("states:"))
    print(f"  {'total AWS API calls (excluding transitions)':48} {aws:4d}")


if __name__ == "__main__":
    sys.exit(record.run(main))
