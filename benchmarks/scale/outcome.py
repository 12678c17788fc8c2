"""What one stack's run of one scenario measured (`Outcome`): the figures the print-out shows, and the model's
invariants tests read (copies lost, duplicates, the gap between two accepted calls)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """One stack's run of one scenario: the printed figures and the model's invariants."""

    label: str
    quota: float
    n: int
    physical_limit: float  # copies a second at best, for this stack
    concurrent_copies: int  # the data store's concurrent-copy quota
    allowed: float = 0.0  # seconds the quota (what it left this stack) allows for N
    drain: float | None = None  # first event to the last CopyImageSet accepted, if every copy was made
    copied: int = 0
    copies_failed: int = 0
    copies_lost: int = 0
    copies_pending: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    timed_out: int = 0
    duplicates: int = 0
    throttled: int = 0  # CopyImageSet calls throttled
    over_quota: int = 0  # CopyImageSet calls refused over the concurrent-copy quota
    transitions: int = 0
    invocations: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    end_to_copied: list[float] = field(default_factory=list)
    min_accept_gap: float = math.inf  # between two accepted CopyImageSet calls of this stack
    first_call: float = math.nan  # the first event to the first CopyImageSet accepted
    longest_wait: float = 0.0
    peak_late: float = 0.0  # the live lane's LiveBacklogLateSeconds, at its highest (alarm LiveBacklogLate: 1 h)
    peak_lambda: int = 0
    peak_in_flight: int = 0
    peak_starts: int = 0
    peak_transitions: int = 0
    transition_delay: float = 0.0
    peak_reads: dict[str, int] = field(default_factory=dict)  # each HealthImaging read's calls in its busiest second
    read_throttled: Counter[str] = field(default_factory=Counter)  # each read's calls throttled
    sweep_pages: int = 0  # the reconciliation sweep's SearchImageSets pages
    sweeps_failed: int = 0
    peak_wakes: int = 0
    peak_pacing_writes: int = 0
    peak_pending_writes: int = 0
    lowest_pace: float = math.inf
    last_pace: float = math.nan  # the pace of the run that started the last copies
    real_seconds: float = 0.0
    # The lanes: of the N copies, `bulk` were a backfill's (in the bulk lane from the start), the rest live events.
    bulk: int = 0
    live_waits: list[float] = field(default_factory=list)  # each live copy's event to its CopyImageSet accepted
    live_accepts: list[float] = field(default_factory=list)  # when each live copy's CopyImageSet was accepted
    bulk_last_accept: float = -math.inf
    peak_late_bulk: float = 0.0  # the bulk lane's BulkBacklogLateSeconds, at its highest (against its share)
    window_calls: list[int] = field(default_factory=lambda: [0, 0])  # live, bulk calls accepted in the window

    @property
    def executions_failed(self) -> int:
        return sum(self.failed.values()) + self.timed_out

    def drain_ratio(self) -> float | None:
        return None if self.drain is None else self.drain / self.allowed

    def reads_throttled_per_copy(self) -> float:
        return sum(self.read_throttled.values()) / self.n

    def pushbacks_per_copy(self) -> float:
        return (self.throttled + self.over_quota) / self.n

    def live_wait(self, share: float) -> float:
        """The live copies' event-to-CopyImageSet time at this quantile (0.5: the median, 1: the longest)."""
        ordered = sorted(self.live_waits) or [math.nan]
        return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]

    def bulk_drain_ratio(self) -> float | None:
        """The backfill's drain (the first event to its last CopyImageSet accepted) over what the quota left it: its
        copies and the live ones called meanwhile, at the physical limit."""
        if self.bulk == 0 or self.bulk_last_accept == -math.inf or self.copied < self.n:
            return None
        live_meanwhile = sum(1 for at in self.live_accepts if at <= self.bulk_last_accept)
        return self.bulk_last_accept / ((self.bulk + live_meanwhile) / self.physical_limit)

    def window_bulk_share(self) -> float | None:
        calls = sum(self.window_calls)
        return None if not calls else self.window_calls[1] / calls

    def unmet(self) -> list[str]:
        """Issue 16's targets this run misses."""
        ratio = self.drain_ratio()
        checks = {
            "drain": ratio is not None and ratio <= 1.05,
            "failed": self.executions_failed == 0,
            "lost": self.copies_lost == 0,
            "dup": self.duplicates == 0,
            "throttled": self.throttled / self.n <= 0.05,
        }
        return [name for name, met in checks.items() if not met]
