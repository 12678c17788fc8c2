"""Arrivals and scenarios: the bursts and quotas of docs/figures.md's table, a scenario's events spread over its
window, one stack's run or several stacks' of one account (`simulate`, `simulate_stacks`), what the quota
allows a stack when others share it, runs spread over the machine's cores (`run_jobs`), and issue 16's
shared-quota scenarios (`shared_report`). A new kind of arrival or scenario goes here."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor

from benchmarks.scale.limits import Limits
from benchmarks.scale.outcome import Outcome
from benchmarks.scale.report import report
from benchmarks.scale.services import Account, OtherClient
from benchmarks.scale.stack import Stack

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
