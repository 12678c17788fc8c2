"""The print-out: the assumed figures (limits.py's, with their sources), each run's results against issue 16's
targets, and where each limit binds, as Markdown tables (docs/figures.md quotes them)."""

from __future__ import annotations

import math
from collections.abc import Callable

from benchmarks.scale.limits import DAY, READ_QUOTA_FIELDS, SEND_TASK_SUCCESS_REFILL, Limits
from benchmarks.scale.outcome import Outcome


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} d"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) + " |" for line in lines
    )


def reserved_concurrency(outcome: Outcome) -> int:
    """The reservation that leaves room: 1.25 x the peak environments, at least 10."""
    return max(10, math.ceil(1.25 * outcome.peak_lambda))


def results_table(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        ratio = o.drain_ratio()
        ends = sorted(o.end_to_copied) or [math.nan]
        rows.append(
            [
                f"{o.quota:g}",
                f"{o.concurrent_copies:,}",
                o.label,
                "never" if ratio is None else f"{ratio:.3f}",
                f"{o.executions_failed:,}",
                f"{o.copies_lost:,} / {o.duplicates:,}",
                f"{o.throttled / o.n:.3f} / {o.over_quota / o.n:.3f}",
                f"{o.transitions / o.n:.1f}",
                f"{sum(o.calls.values()) / o.n:.1f}",
                f"{ends[len(ends) // 2]:.1f} / {ends[-1]:.0f} s",
                "all met" if not o.unmet() else "missed: " + ", ".join(o.unmet()),
            ]
        )
    headers = [
        "Q", "C", "scenario", "drain / limit", "failed", "lost / dup", "throttled / over quota per copy",
        "transitions / copy", "AWS calls / copy", "end -> COPIED p50 / max", "targets",
    ]  # fmt: skip
    return table(headers, rows)


def limits_table(outcomes: list[Outcome], limits_of: Callable[[Outcome], Limits]) -> str:
    rows = []
    for o in outcomes:
        limits = limits_of(o)
        rows.append(
            [
                f"{o.quota:g}",
                f"{o.concurrent_copies:,}",
                o.label,
                f"{o.peak_lambda} (reserve {reserved_concurrency(o)})",
                f"{o.peak_in_flight} of {limits.concurrent_copies}",
                f"{o.peak_starts} of {limits.start_execution[1]:g}",
                f"{o.peak_transitions} of {limits.transitions[1]:g} ({duration(o.transition_delay)} delay)",
                " / ".join(f"{o.peak_reads.get(op, 0)} of {limits.read_quota(op):g}" for op in READ_QUOTA_FIELDS),
                f"{o.peak_wakes} of {SEND_TASK_SUCCESS_REFILL:g}",
                f"{o.peak_pacing_writes} / {o.peak_pending_writes}",
                f"{o.lowest_pace:g}",
                duration(o.longest_wait),
                duration(o.peak_late),
                f"{o.real_seconds:.0f} s",
            ]
        )
    headers = [
        "Q", "C", "scenario", "peak Lambda", "peak copies in flight", "StartExecution/s (refill)",
        "transitions/s (refill)", "reads/s G / M / S (quota)", "SendTaskSuccess/s (refill)",
        "writes/s: pacing item / PENDING index", "lowest pace", "longest event->call",
        "backlog late (peak)", "model run",
    ]  # fmt: skip
    return table(headers, rows)


def report(title: str, outcomes: list[Outcome], limits_of: Callable[[Outcome], Limits], seconds: float) -> str:
    shown: set[tuple[float, int]] = set()
    parts = [f"{title}: {len(outcomes)} runs in {seconds:.0f} s of real time."]
    for o in outcomes:
        if (o.quota, o.concurrent_copies) in shown:
            continue
        shown.add((o.quota, o.concurrent_copies))
        parts += [
            "",
            f"Assumed figures at Q = {o.quota:g}, C = {o.concurrent_copies:,}",
            table(["figure", "value", "source"], [list(r) for r in limits_of(o).assumptions()]),
        ]
    parts += [
        "",
        "Results (drain: first event to last CopyImageSet accepted, over what the quota allows)",
        results_table(outcomes),
    ]
    parts += ["", "Where the limits bind", limits_table(outcomes, limits_of)]
    return "\n".join(parts)


def lanes_table(outcomes: list[Outcome]) -> str:
    """Issue 23's figures: new imports' event-to-CopyImageSet times while a backfill waits, the backfill's drain
    against what the quota leaves it, and the model's invariants."""
    rows = []
    for o in outcomes:
        ratio = o.bulk_drain_ratio()
        share = o.window_bulk_share()
        rows.append(
            [
                f"{o.quota:g}",
                f"{o.concurrent_copies:,}",
                f"{o.bulk:,} backfill; imports {o.label}",
                f"{len(o.live_waits):,}",
                " / ".join(duration(o.live_wait(q)) for q in (0.5, 0.99, 1.0)),
                "never" if ratio is None else f"{ratio:.3f}",
                "-" if share is None else f"{share:.3f}",
                f"{duration(o.peak_late)} / {duration(o.peak_late_bulk)}",
                f"{o.executions_failed:,}",
                f"{o.copies_lost:,} / {o.duplicates:,}",
                f"{o.throttled / o.n:.3f}",
                f"{o.real_seconds:.0f} s",
            ]
        )
    headers = [
        "Q", "C", "scenario", "imports copied", "import's event -> CopyImageSet p50 / p99 / max",
        "backfill drain / what the quota left it", "bulk share of calls while imports exceed the quota",
        "late (peak): live / bulk", "failed", "lost / dup", "throttled / copy", "model run",
    ]  # fmt: skip
    return table(headers, rows)


def reads_table(outcomes: list[Outcome], limits_of: Callable[[Outcome], Limits]) -> str:
    """Issue 24's figures: each run's drain against the limit that binds (the copy quota, the concurrent copies, or a
    read's quota over the calls a copy makes), the dispatcher's planned rate and its binding budget, each read's calls
    a second at their peak against its quota, throttled reads per copy, and the model's invariants."""
    rows = []
    for o in outcomes:
        limits = limits_of(o)
        ratio = o.drain_ratio()
        limits_by = {
            "CopyImageSet": limits.copy_quota,
            "concurrent copies": limits.concurrent_copies / limits.copy_seconds,
        }
        limits_by.update({str(op): allowed for op, allowed in limits.read_limits().items()})
        binds = min(limits_by, key=lambda name: limits_by[name])
        planned = limits.planned
        rows.append(
            [
                f"{o.quota:g}",
                f"{o.concurrent_copies:,}",
                str(limits.policy),
                " / ".join(f"{limits.read_quota(op):g}" for op in READ_QUOTA_FIELDS),
                o.label,
                f"{o.physical_limit:.3g}/s ({binds})",
                f"{planned.rate:.3g}/s ({planned.binding})",
                "never" if ratio is None else f"{ratio:.3f}",
                " / ".join(f"{o.peak_reads.get(op, 0)}" for op in READ_QUOTA_FIELDS),
                f"{o.reads_throttled_per_copy():.3f}",
                f"{o.executions_failed:,}",
                f"{o.copies_lost:,} / {o.duplicates:,}",
                f"{o.throttled / o.n:.3f}",
                f"{sum(o.calls.values()) / o.n:.1f}",
                f"{o.real_seconds:.0f} s",
            ]
        )
    headers = [
        "Q", "C", "copyPolicy", "read quotas G / M / S", "scenario", "limit that binds", "planned rate (binds)",
        "drain / limit", "peak reads/s G / M / S", "throttled reads / copy", "failed", "lost / dup",
        "throttled copies / copy", "AWS calls / copy", "model run",
    ]  # fmt: skip
    return table(headers, rows)
