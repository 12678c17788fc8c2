"""A burst of imports against the CopyImageSet quota, on the emulator's clock.

N "Image Set Created" events arrive at once and take the deployed way: the admission queue's consumer
writes them into the copy journal's backlog, the dispatcher starts a minute of slots at a time, each
execution runs the synthesized state machine with the real handler (local runner), and HealthImaging's
completion events (the emulator announces each copy that lands; the runner delivers them a second later
through the completion queue's consumer) wake the executions waiting for them. Prints: drain time as a
ratio to the physical limit (N / min(TPS quota, concurrent copies / a copy's duration)), pushed-back
CopyImageSet calls per copy (throttled, over the concurrent-copy quota), copies lost, duplicates, state
transitions and AWS API calls per copy, GetImageSet calls per copy, and how long from a copy's end to its
journal saying COPIED.

    python -m benchmarks.burst [--quota 0.25] [--imports N] [--rate R] [--concurrent-copies 100]

--quota sets the emulator's CopyImageSet quota (its burst: 4 s of it, at least 1, as benchmarks/scale/limits.py
assumes) and the stack's copyRatePerSecond by docs/configuration.md's rule (0.96 x the quota at burst 1, 0.99 x above).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from typing import Any

import boto3

from benchmarks import record
from benchmarks.scale.limits import default_burst, default_rate
from offline import seed
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import TABLE, LocalPipeline
from offline.template import WorkflowDefinition, synthesize


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quota", type=float, default=0.25, help="the emulator's CopyImageSet TPS quota")
    parser.add_argument("--imports", type=int, default=None, help="default: 1,000 at a quota under 1, else 2,000")
    parser.add_argument("--rate", type=float, default=None, help="copyRatePerSecond (default: docs/configuration.md)")
    parser.add_argument("--concurrent-copies", type=int, default=100, help="the emulator's concurrent-copy quota")
    parser.add_argument("--breakdown", action="store_true", help="every API operation's calls per copy")
    parser.add_argument(
        "--policy",
        choices=("snapshot", "merge-into-primary"),
        default="snapshot",
        help="merge-into-primary: each import is the second part of a series whose primary exists",
    )
    args = parser.parse_args()
    n = args.imports or (1_000 if args.quota < 1 else 2_000)
    burst = default_burst(args.quota)
    rate = args.rate or default_rate(args.quota, burst)
    context: dict[str, Any] = {
        "datastoreId": seed.DATASTORE_ID,
        "copyRatePerSecond": rate,
        "concurrentCopyQuota": args.concurrent_copies,
        "copyPolicy": args.policy,
    }
    workflow = WorkflowDefinition.from_template(synthesize(context))

    clock = VirtualClock()
    emulator = HealthImagingEmulator(
        clock=clock.now,
        copy_rate_per_second=args.quota,
        copy_burst=burst,
        max_concurrent_copies=args.concurrent_copies,
    )
    emulator.create_datastore(seed.DATASTORE_ID)
    merge = args.policy == "merge-into-primary"
    if merge:  # each study's series 1: a primary (instances 1-2), then the import to merge into it (3-4)
        for study in range(n):
            emulator.seed_image_set(
                seed.DATASTORE_ID,
                seed.series_image_set_metadata(patient_number=study % 97, study=study, series=1, instances=(1, 2)),
            )
    sources = [
        emulator.seed_image_set(
            seed.DATASTORE_ID,
            seed.series_image_set_metadata(patient_number=study % 97, study=study, series=1, instances=(3, 4))
            if merge
            else seed.image_set_metadata(patient_number=study % 97, study=study, series=[1]),
        )
        for study in range(n)
    ]
    started_real = time.perf_counter()
    with LocalPipeline(workflow, emulator, clock) as pipeline:
        api_calls = pipeline.count_api_calls()
        burst_at = clock.now()
        clock.join()  # hold the clock while the burst arrives: every event at the same instant
        not_admitted = pipeline.admit(
            [
                seed.image_set_created_event(seed.DATASTORE_ID, source, is_primary=not merge, event_id=str(n))
                for n, source in enumerate(sources)
            ]
        )
        clock.leave()
        records = pipeline.drain_backlog(timeout=3600)
        lambda_calls = pipeline.lambda_calls
        copied_at = _copied_at()

    accepted = Counter(copy.source_id for copy in emulator.accepted)
    copied = [r for r in records if (r.output or {}).get("status") == "COPIED"]
    failed = [r for r in records if r.status != "SUCCEEDED"]
    last_accept = max(copy.completes_at - emulator.copy_seconds for copy in emulator.accepted) - burst_at
    statuses = emulator.copy_image_set_calls()
    physical = min(args.quota, args.concurrent_copies / emulator.copy_seconds)
    limit = n / physical
    to_copied = sorted(copied_at[copy.source_id] - copy.completes_at for copy in emulator.accepted)
    print(
        f"Burst of {n:,} imports ({args.policy}), CopyImageSet quota {args.quota:g}/s burst {burst:g},"
        f" {args.concurrent_copies} concurrent copies of {emulator.copy_seconds:g} s, copyRatePerSecond {rate:g}"
        f" ({time.perf_counter() - started_real:.0f} s real)"
    )
    print(f"  drain time (last copy accepted)     {last_accept:10,.0f} s")
    print(f"  {f'physical limit (N / {physical:.3g})':34}{limit:10,.0f} s")
    print(f"  ratio                               {last_accept / limit:10.3f}")
    print(f"  throttled CopyImageSet per copy     {statuses.count(429) / n:10.3f}")
    print(f"  over the concurrent quota per copy  {statuses.count(402) / n:10.3f}")
    print(f"  copies COPIED                       {len(copied):10d}")
    print(f"  copies lost (not COPIED, no error)  {n - len(copied) - len(failed):10d}")
    print(f"  events not admitted                 {len(not_admitted):10d}")
    print(f"  executions failed                   {len(failed):10d}")
    print(f"  duplicates (extra accepted copies)  {sum(c - 1 for c in accepted.values()):10d}")
    print(f"  copy end -> COPIED, median / max    {statistics.median(to_copied):7.1f} / {to_copied[-1]:.1f} s")
    print(f"  state transitions per copy          {statistics.mean(r.transitions for r in records):10.1f}")
    by_service = Counter({service: 0 for service in ("dynamodb", "medical-imaging", "stepfunctions")})
    for name, count in api_calls.items():
        by_service[name.split(":")[0]] += count
    per_copy = (by_service["dynamodb"] + by_service["medical-imaging"] + lambda_calls) / n
    print(
        f"  AWS API calls per copy              {per_copy:10.1f}  (dynamodb {by_service['dynamodb'] / n:.1f},"
        f" medical-imaging {by_service['medical-imaging'] / n:.1f}, lambda {lambda_calls / n:.1f})"
    )
    states = [
        f"{name.split(':')[1]} {count / n:.2f}"
        for name, count in sorted(api_calls.items())
        if name.startswith("stepfunctions:")
    ]
    print(f"  + Step Functions API calls per copy {by_service['stepfunctions'] / n:10.1f}  ({', '.join(states)})")
    print(f"  GetImageSet per copy                {api_calls['medical-imaging:GetImageSet'] / n:10.2f}")
    if args.breakdown:
        for name, count in sorted(api_calls.items(), key=lambda item: -item[1]):
            print(f"    {name:48}{count / n:8.2f}")
        print(f"    {'lambda:Invoke':48}{lambda_calls / n:8.2f}")
    return 0 if len(copied) == n else 1


def _copied_at() -> dict[str, float]:
    """When each copy's journal entry said COPIED (the virtual clock's time of CheckCopy's write)."""
    found: dict[str, float] = {}
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=TABLE):
        for item in page["Items"]:
            if item.get("journalStatus", {}).get("S") == "COPIED":
                found[item["journalSourceId"]["S"]] = float(item["updatedAt"]["N"])
    return found


if __name__ == "__main__":
    sys.exit(record.run(main))
