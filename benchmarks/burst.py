"""A burst of imports against the CopyImageSet quota, on the emulator's clock.

N "Image Set Created" events arrive at once and take the deployed way: the admission queue's
consumer writes them into the copy journal's backlog, the dispatcher starts a minute of slots at
a time, each execution runs the synthesized state machine with the real handler (local runner).
Prints: drain time as a ratio to the physical limit
(N / 0.25 s), throttled CopyImageSet calls per copy, copies lost, duplicates, state
transitions and AWS API calls per copy.

    python -m benchmarks.burst [--imports 1000] [--rate 0.24]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from typing import Any

from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import LocalPipeline
from offline.template import WorkflowDefinition, synthesize

QUOTA_TPS = 0.25


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--imports", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=None, help="copyRatePerSecond (default: the stack's)")
    args = parser.parse_args()
    context: dict[str, Any] = {"datastoreId": seed.DATASTORE_ID}
    if args.rate:
        context["copyRatePerSecond"] = args.rate
    workflow = WorkflowDefinition.from_template(synthesize(context))

    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now, copy_rate_per_second=QUOTA_TPS, copy_burst=1)
    emulator.create_datastore(seed.DATASTORE_ID)
    sources = [
        emulator.seed_image_set(seed.DATASTORE_ID, seed.image_set_metadata(patient_number=n % 97, study=n, series=[1]))
        for n in range(args.imports)
    ]
    started_real = time.perf_counter()
    with LocalPipeline(workflow, emulator, clock) as pipeline:
        api_calls = pipeline.count_api_calls()
        burst_at = clock.now()
        clock.join()  # hold the clock while the burst arrives: every event at the same instant
        not_admitted = pipeline.admit(
            [
                seed.image_set_created_event(seed.DATASTORE_ID, source, event_id=str(n))
                for n, source in enumerate(sources)
            ]
        )
        clock.leave()
        records = pipeline.drain_backlog(timeout=3600)
        lambda_calls = pipeline.lambda_calls

    accepted = Counter(copy.source_id for copy in emulator.accepted)
    copied = [r for r in records if (r.output or {}).get("status") == "COPIED"]
    failed = [r for r in records if r.status != "SUCCEEDED"]
    last_accept = max(copy.completes_at - emulator.copy_seconds for copy in emulator.accepted) - burst_at
    statuses = emulator.copy_image_set_calls()
    physical = args.imports / QUOTA_TPS
    n = args.imports
    print(
        f"Burst of {n} imports, CopyImageSet quota {QUOTA_TPS}/s burst 1, copyRatePerSecond "
        f"{float(workflow.environment['COPY_RATE_PER_SECOND'])} ({time.perf_counter() - started_real:.0f} s real)"
    )
    print(f"  drain time (last copy accepted)     {last_accept:10,.0f} s")
    print(f"  physical limit (N / 0.25)           {physical:10,.0f} s")
    print(f"  ratio                               {last_accept / physical:10.3f}")
    print(f"  throttled CopyImageSet per copy     {statuses.count(429) / n:10.3f}")
    print(f"  copies COPIED                       {len(copied):10d}")
    print(f"  copies lost (not COPIED, no error)  {n - len(copied) - len(failed):10d}")
    print(f"  events not admitted                 {len(not_admitted):10d}")
    print(f"  executions failed                   {len(failed):10d}")
    print(f"  duplicates (extra accepted copies)  {sum(c - 1 for c in accepted.values()):10d}")
    print(f"  state transitions per copy          {statistics.mean(r.transitions for r in records):10.1f}")
    by_service = Counter({service: 0 for service in ("dynamodb", "medical-imaging")})
    for name, count in api_calls.items():
        by_service[name.split(":")[0]] += count
    per_copy = (sum(by_service.values()) + lambda_calls) / n
    print(
        f"  AWS API calls per copy              {per_copy:10.1f}  "
        f"({', '.join(f'{k} {v / n:.1f}' for k, v in sorted(by_service.items()))}, lambda {lambda_calls / n:.1f})"
    )
    return 0 if len(copied) == n else 1


if __name__ == "__main__":
    sys.exit(main())
