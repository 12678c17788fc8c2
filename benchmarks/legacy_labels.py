"""How long the entries 0.2.0 left PENDING (no lane) take to reach the lanes' index after an upgrade: the
dispatcher's own labelling (copier.legacy_lanes.label_unlaned) run by run, on moto's DynamoDB with the table as
synthesized (its indexes included), on entries written as 0.2.0 wrote them (half a backfill's).

    python -m benchmarks.legacy_labels [--entries 10000] [--seconds 40]

Each run labels for `--seconds` of real time (a scheduled run labels with what it has left of UNTIL_SECONDS after
its starts: ~49 s at the default quota, where a minute's 15 starts take a fraction of a second; ~15 s at 50 copies
a second, whose 3,000 starts take 30 s at START_RATE), at most LABELS_PER_SECOND. Printed: labels a run and a
second here, runs to label them all, and what that makes of 1M entries here and at the code's bound on DynamoDB
(LABELS_PER_SECOND x the seconds a run has): moto's writes (~13 ms each) are slower than DynamoDB's, so on AWS the
bound is what limits it.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import boto3

from benchmarks import record
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator
from offline.runner import REGION, TABLE, LocalPipeline
from offline.template import WorkflowDefinition, synthesize

MILLION = 1_000_000


def written_by_0_2_0(count: int, at: float) -> None:
    """`count` PENDING journal entries as 0.2.0 wrote them: no lane, every other one a backfill's."""
    client = boto3.client("dynamodb", region_name=REGION)
    for start in range(0, count, 25):
        requests: list[dict[str, Any]] = []
        for n in range(start, min(start + 25, count)):
            image_set_id = f"{n:032x}"
            item = {
                "id": {"S": f"journal#{image_set_id}#1"},
                "journalSourceId": {"S": image_set_id},
                "sourceVersionId": {"S": "1"},
                "journalStatus": {"S": "PENDING"},
                "decision": {"S": "copy"},
                "updatedAt": {"N": str(at + n / 1_000)},
                "createdAt": {"N": str(at + n / 1_000)},
                **({"backfillId": {"S": "archive"}} if n % 2 else {}),
            }
            requests.append({"PutRequest": {"Item": item}})
        client.batch_write_item(RequestItems={TABLE: requests})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=10_000, help="more than a run labels: a few runs")
    parser.add_argument("--seconds", type=float, default=40.0, help="real seconds of labelling a run")
    args = parser.parse_args()
    clock = VirtualClock()
    workflow = WorkflowDefinition.from_template(synthesize({"datastoreId": "0123456789abcdef0123456789abcdef"}))
    with LocalPipeline(workflow, HealthImagingEmulator(clock=clock.now), clock):
        from copier import legacy_lanes, pacing, table  # the pipeline's fresh modules (it puts lambda/ on the path)

        written_by_0_2_0(args.entries, clock.now() - 86_400)
        labelled, runs, began = 0, [], time.perf_counter()
        while labelled < args.entries:
            state = table.get_item(pacing.PACING_KEY) or {}
            started = time.perf_counter()
            run = legacy_lanes.label_unlaned(state, clock.now(), seconds=args.seconds)
            runs.append((run.labelled, time.perf_counter() - started))
            labelled += run.labelled
            if not run.labelled:
                raise RuntimeError(f"a run labelled nothing with {args.entries - labelled} left")
        spent = time.perf_counter() - began
    per_run = max(count for count, _ in runs)  # a run that had the whole of its time
    per_second = labelled / sum(seconds for _, seconds in runs)
    bound = legacy_lanes.LABELS_PER_SECOND * args.seconds
    print(f"{args.entries:,} entries of 0.2.0 labelled in {len(runs)} runs, {spent:.0f} s of real time")
    print(f"here (moto): {per_run:,} a run at most, {per_second:.0f} a second: 1M in {MILLION / per_run:.0f} runs")
    print(
        f"on DynamoDB, the code's bound ({legacy_lanes.LABELS_PER_SECOND:g} a second x {args.seconds:g} s a run):"
        f" {bound:,.0f} a run, 1M in {MILLION / bound:.0f} runs, {MILLION / bound / 60:.1f} h at a run a minute"
    )


if __name__ == "__main__":
    sys.exit(record.run(main))
