"""The command line: `python -m benchmarks.scale` (flags and scenarios: the package's docstring)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from benchmarks import record, scale
from benchmarks.scale.limits import SETTINGS, Limits
from benchmarks.scale.report import report
from benchmarks.scale.scenarios import BURSTS, C_RAISED, QUOTAS, lanes_report, reads_report, run_jobs, shared_report
from copier.settings import CopyPolicy


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=scale.__doc__.split("\n")[0] if scale.__doc__ else None
    )
    parser.add_argument("--quota", type=float, help="CopyImageSet TPS quota (applied)")
    parser.add_argument("--rate", type=float, help="copyRatePerSecond (default: docs/configuration.md)")
    parser.add_argument("--burst", type=float, help="the quota's burst (default: 4 s of it, at least 1)")
    parser.add_argument("--concurrent-copies", type=int, default=SETTINGS.concurrent_copy_quota)
    parser.add_argument("--copy-seconds", type=float, default=45.0)
    parser.add_argument("--get-image-set-quota", type=float, help="GetImageSet TPS quota (default: AWS's, 25)")
    parser.add_argument("--get-image-set-metadata-quota", type=float, help="GetImageSetMetadata (default 50)")
    parser.add_argument("--search-image-sets-quota", type=float, help="SearchImageSets (default 25)")
    parser.add_argument(
        "--policy", choices=[p.value for p in CopyPolicy if p is not CopyPolicy.OFF], default="snapshot"
    )
    parser.add_argument("--drop-events", type=float, default=0.0, help="share of completion events dropped")
    parser.add_argument("--quick", action="store_true", help="10k in 60 s at 0.25, 1 and 10 TPS")
    parser.add_argument("--table", action="store_true", help="docs/figures.md's table (read quotas raised with Q)")
    parser.add_argument("--shared", action="store_true", help="the shared-quota scenarios")
    parser.add_argument("--lanes", action="store_true", help="new imports while a 1M backfill waits (issue 23)")
    parser.add_argument("--reads", action="store_true", help="the read budgets' scenarios (issue 24)")
    parser.add_argument("--backfill", type=int, default=1_000_000, help="--lanes: the backfill's image sets")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.shared:
        print(shared_report(args.seed))
        return 0
    if args.lanes:
        print(lanes_report(args.seed, bulk=args.backfill))
        return 0
    if args.reads:
        print(reads_report(args.seed))
        return 0

    def limits_at(quota: float, reads: str = "default") -> Limits:
        return Limits.at(
            quota,
            reads=reads,
            copy_rate=args.rate,
            copy_burst=args.burst,
            get_image_set_quota=args.get_image_set_quota,
            get_image_set_metadata_quota=args.get_image_set_metadata_quota,
            search_image_sets_quota=args.search_image_sets_quota,
            policy=args.policy,
            concurrent_copies=args.concurrent_copies,
            copy_seconds=args.copy_seconds,
            event_drop=args.drop_events,
        )

    if args.table:
        # The default concurrent-copy quota at every Q, then, at 10 and 40 TPS, one raised with it (C_RAISED); the
        # read quotas raised with the copy quota as docs/configuration.md says (the read budgets' own rows: --reads).
        runs = [(limits_at(q, "raised"), b) for q in QUOTAS for b in BURSTS]
        raised = [dataclasses.replace(limits_at(q, "raised"), concurrent_copies=c) for q, c in C_RAISED.items()]
        runs += [(limits, b) for limits in raised for b in BURSTS]
    elif args.quick:
        runs = [(limits_at(q), BURSTS[0]) for q in (0.25, 1.0, 10.0)]
    else:
        runs = [(limits_at(args.quota or 0.25), b) for b in BURSTS]
    outcomes = run_jobs([(label, limits, n, window, args.seed) for limits, (label, n, window) in runs])
    limits_of = {id(o): limits for o, (limits, _) in zip(outcomes, runs, strict=True)}
    print(report("Scale model", outcomes, lambda o: limits_of[id(o)], time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(record.run(main))
