"""Arrivals and scenarios: the bursts and quotas of docs/figures.md's table, a scenario's events spread over its
window, one stack's run or several stacks' of one account (`simulate`, `simulate_stacks`), what the quota
allows a stack when others share it, runs spread over the machine's cores (`run_jobs`), issue 16's
shared-quota scenarios (`shared_report`), and issue 23's lanes (`LANES`, `simulate_lanes`, `lanes_report`): new
imports arriving while a 1M backfill waits. A new kind of arrival or scenario goes here."""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from benchmarks.scale.limits import Limits
from benchmarks.scale.outcome import Outcome
from benchmarks.scale.report import lanes_table, reads_table, report
from benchmarks.scale.services import Account, OtherClient
from benchmarks.scale.stack import Stack
from copier.settings import CopyPolicy

BURSTS: tuple[tuple[str, int, float], ...] = (
    ("10k in 60 s", 10_000, 60.0),
    ("50k in 5 min", 50_000, 300.0),
    ("200k in 10 min", 200_000, 600.0),
    ("1M backfill", 1_000_000, 0.0),
)
QUOTAS = (0.25, 1.0, 10.0, 40.0)
# The concurrent-copy quota raised with the TPS quota, so that the TPS quota binds: at least 1.25 x the rate x a
# copy's duration (docs/configuration.md, "Choosing copyRatePerSecond": the dispatcher's measure of a copy's
# duration includes its completion event's delay).
C_RAISED = {10.0: 600, 40.0: 2_400}


def arrivals_of(n: int, window: float, start: float = 0.0) -> list[float]:
    return [start + index * window / n for index in range(n)]


def simulate(
    limits: Limits,
    n: int,
    window: float,
    *,
    label: str = "",
    seed: int = 1,
    others: tuple[tuple[float, float, float], ...] = (),
) -> Outcome:
    """One stack, N events spread evenly over `window` seconds (0: all at once); `others`: other clients of
    the quota, (rate, from, to)."""
    (outcome,) = simulate_stacks([limits], n, window, label=label, seed=seed, others=others)
    return outcome


def simulate_stacks(
    stack_limits: list[Limits],
    n: int,
    window: float,
    *,
    label: str = "",
    seed: int = 1,
    others: tuple[tuple[float, float, float], ...] = (),
) -> list[Outcome]:
    """Stacks of one account (one data store each), each with N events over `window` seconds at once."""
    started = time.perf_counter()
    account = Account(stack_limits[0], seed)
    stacks = [
        Stack(account, limits, label or f"{n:,} in {window:g} s", arrivals_of(n, window), name=f"stack {i + 1}")
        for i, limits in enumerate(stack_limits)
    ]
    for rate, start, end in others:
        OtherClient(account, rate, start, end)
    for stack in stacks:
        stack.begin()
    account.run(until=lambda: all(stack.finished for stack in stacks))
    outcomes = [stack.finish(time.perf_counter() - started) for stack in stacks]
    for stack, outcome in zip(stacks, outcomes, strict=True):
        outcome.allowed = allowed_seconds(stack, stack_limits, others)
    return outcomes


def allowed_seconds(stack: Stack, stack_limits: list[Limits], others: tuple[tuple[float, float, float], ...]) -> float:
    """What the quota left this stack allows for its N copies: the physical limit, less what other clients
    take of the TPS quota while they run, shared evenly with the account's other stacks while they copy."""
    limits = stack.limits
    n = len(stack.arrivals)
    if not others and len(stack_limits) == 1:
        return n / limits.physical_limit
    # Walk time in seconds: this stack's share of the quota is (quota - others' demand) / stacks, capped by
    # its data store's concurrent copies over a copy's duration.
    done, t = 0.0, 0.0
    concurrency = limits.concurrent_copies / limits.copy_seconds
    while done < n:
        taken = sum(rate for rate, start, end in others if start <= t < end)
        share = min(concurrency, max(0.0, limits.copy_quota - taken) / len(stack_limits))
        done += share
        t += 1.0
    return t


def _run(job: tuple[str, Limits, int, float, int]) -> Outcome:
    label, limits, n, window, seed = job
    return simulate(limits, n, window, label=label, seed=seed)


def run_jobs(jobs: list[tuple[str, Limits, int, float, int]]) -> list[Outcome]:
    # Each run is one process's event loop; the largest go first so both cores stay busy.
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][2] * jobs[i][1].copy_rate)
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        done = dict(zip(order, pool.map(_run, [jobs[i] for i in order]), strict=True))
    return [done[i] for i in range(len(jobs))]


def shared_report(seed: int) -> str:
    """Issue 16's shared-quota scenarios at Q = 10 (the concurrent-copy quota raised so that the TPS quota
    binds): another client takes half the quota for an hour during a 50k burst; two stacks of one account,
    each configured at the full quota, both with 50k bursts at once."""
    started = time.perf_counter()
    raised = {"concurrent_copies": 1_000}
    one = Limits.at(10.0, **raised)
    half = simulate(
        one,
        50_000,
        300.0,
        label="50k, another client at 5/s from 10 to 70 min",
        seed=seed,
        others=((5.0, 600.0, 4_200.0),),
    )
    full = Limits.at(10.0, copy_rate=10.0, **raised)
    pair = simulate_stacks([full, full], 50_000, 300.0, label="two stacks, 50k each, at 10/s each", seed=seed)
    for stack, outcome in enumerate(pair, start=1):
        outcome.label = f"stack {stack} of two, 50k each at once, both at 10/s"
    outcomes = [half, *pair]
    return report("Shared quota", outcomes, lambda o: full if "two" in o.label else one, time.perf_counter() - started)


# --- issue 23: new imports while a backfill waits -------------------------------------------------------------------
@dataclass(frozen=True)
class LiveLoad:
    """New imports, as a site makes them: a steady stream, bursts (an import job's image sets, spread over ten
    minutes) every so often, and, for the row that shows it, a span where they come faster than the quota."""

    steady: float  # events a second, always
    burst: int  # events in each burst
    every: float  # seconds from one burst's start to the next's
    overload: tuple[float, float, float] | None = None  # (events a second on top, from, to)
    burst_window: float = 600.0

    def arrivals(self, until: float) -> list[float]:
        """When each event arrives, in order, up to `until` seconds."""
        times = [n / self.steady for n in range(int(until * self.steady))]
        for start in (k * self.every + self.every / 2 for k in range(int(until / self.every))):
            times += [start + n * self.burst_window / self.burst for n in range(self.burst)]
        if self.overload is not None:
            rate, start, end = self.overload
            times += [start + n / rate for n in range(int((end - start) * rate))]
        return sorted(times)

    def mean_rate(self) -> float:
        return self.steady + self.burst / self.every

    def describe(self) -> str:
        load = f"{self.steady:g}/s + {self.burst:,} in 10 min every {self.every / 3600:g} h"
        if self.overload is not None:
            rate, start, end = self.overload
            load += f"; +{rate:g}/s for {(end - start) / 3600:g} h (above the quota)"
        return load


BACKFILL = 1_000_000
HOUR = 3_600.0
# Per quota (and concurrent-copy quota), a live load the live lane carries: its bursts at most about half of what
# the quota gives in ten minutes (at 0.25 TPS, 144 copies in ten minutes in all: a burst of a few hundred would be
# more than the whole quota, so 60), its steady stream about a tenth. One more row at 0.25 TPS is overloaded: for
# six hours the imports come faster than the whole quota, to show what happens (the bulk lane keeps its share,
# the live lane queues).
LANES: tuple[tuple[float, int | None, LiveLoad], ...] = (
    (0.25, None, LiveLoad(steady=0.02, burst=60, every=6 * HOUR)),
    (0.25, None, LiveLoad(steady=0.02, burst=60, every=6 * HOUR, overload=(0.3, 2 * 86_400.0, 2 * 86_400 + 6 * HOUR))),
    (1.0, None, LiveLoad(steady=0.1, burst=300, every=6 * HOUR)),
    (10.0, None, LiveLoad(steady=0.2, burst=500, every=2 * HOUR)),
    (10.0, 600, LiveLoad(steady=1.0, burst=500, every=2 * HOUR)),
    (40.0, None, LiveLoad(steady=0.2, burst=500, every=2 * HOUR)),
    (40.0, 2_400, LiveLoad(steady=3.0, burst=500, every=2 * HOUR)),
)


def simulate_lanes(limits: Limits, load: LiveLoad, *, bulk: int = BACKFILL, seed: int = 1) -> Outcome:
    """A backfill of `bulk` image sets waiting in the bulk lane at the start, and new imports arriving (`load`)
    for as long as the backfill should take with them: one stack's run."""
    started = time.perf_counter()
    drain = bulk / max(limits.physical_limit - load.mean_rate(), 0.05 * limits.physical_limit)
    live = load.arrivals(drain * 1.05)
    account = Account(limits, seed)
    window = None if load.overload is None else load.overload[1:]
    stack = Stack(account, limits, load.describe(), [0.0] * bulk + live, bulk=bulk, window=window)
    stack.begin()
    account.run(until=lambda: stack.finished)
    return stack.finish(time.perf_counter() - started)


def _run_lanes(job: tuple[Limits, LiveLoad, int, int]) -> Outcome:
    limits, load, bulk, seed = job
    return simulate_lanes(limits, load, bulk=bulk, seed=seed)


def lanes_report(seed: int, *, bulk: int = BACKFILL) -> str:
    """docs/figures.md's lanes table: each LANES row, run in parallel over the machine's cores."""
    started = time.perf_counter()
    jobs = []
    for quota, concurrent_copies, load in LANES:
        limits = Limits.at(quota, reads="raised")  # raised with the copy quota, as docs/configuration.md says
        if concurrent_copies is not None:
            limits = dataclasses.replace(limits, concurrent_copies=concurrent_copies)
        jobs.append((limits, load, bulk, seed))
    order = sorted(range(len(jobs)), key=lambda i: jobs[i][0].physical_limit)  # the longest (slowest) first
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        done = dict(zip(order, pool.map(_run_lanes, [jobs[i] for i in order]), strict=True))
    outcomes = [done[i] for i in range(len(jobs))]
    seconds = time.perf_counter() - started
    return f"Lanes: {len(outcomes)} runs in {seconds:.0f} s of real time.\n\n" + lanes_table(outcomes)


# --- issue 24: every HealthImaging operation against its quota ------------------------------------------------------
# 20k at once (issue 24's: 4,621 failed before the budgets), and 200k over ten minutes, long enough for the
# reconciliation sweeps' pages to share SearchImageSets with the copies.
READS_BURSTS = (("20k in 60 s", 20_000, 60.0), ("200k in 10 min", 200_000, 600.0))
# At 10 and 40 TPS (the concurrent-copy quota raised with it, C_RAISED, so that it does not bind), under each policy,
# with AWS's default read quotas and with them raised as docs/configuration.md says (raised_reads).
READS: tuple[tuple[float, CopyPolicy, str], ...] = tuple(
    (quota, policy, reads)
    for policy in (CopyPolicy.SNAPSHOT, CopyPolicy.MERGE_INTO_PRIMARY)
    for quota in (10.0, 40.0)
    for reads in ("default", "raised")
)


def reads_limits(quota: float, policy: CopyPolicy, reads: str) -> Limits:
    return Limits.at(quota, reads=reads, policy=policy, concurrent_copies=C_RAISED[quota])


def reads_report(seed: int) -> str:
    """docs/figures.md's read budgets table: each READS row, N copies at once against every quota they spend."""
    started = time.perf_counter()
    distinct = list(dict.fromkeys(reads_limits(*row) for row in READS))  # raised as the defaults: one row
    runs = [(limits, burst) for limits in distinct for burst in READS_BURSTS]
    outcomes = run_jobs([(label, limits, n, window, seed) for limits, (label, n, window) in runs])
    limits_of = {id(o): limits for o, (limits, _) in zip(outcomes, runs, strict=True)}
    seconds = time.perf_counter() - started
    return f"Read budgets: {len(outcomes)} runs in {seconds:.0f} s of real time.\n\n" + reads_table(
        outcomes, lambda o: limits_of[id(o)]
    )
