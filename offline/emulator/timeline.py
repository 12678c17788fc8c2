"""The emulator's time: what the clock brings about (copies and updates landing, other writers' actions), kept
in time order and run lazily, each at its own time, when a call or `settle()` finds the clock past it.
At one instant what completes (LANDING) goes before what starts (WRITE), then in the order scheduled.
`timeline_listeners` are told the time of each thing scheduled, so a driver can settle the emulator then.
`Timeline` is the base of every API area's part of HealthImagingEmulator (offline.emulator), which holds the
state declared here and in each part."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class _Event:
    """Something the clock brings about, run when a call finds the clock past `at`."""

    at: float
    rank: int  # at one instant, what completes (LANDING) goes before what starts (WRITE)
    sequence: int  # then in the order they were scheduled
    run: Callable[[float], None] = field(compare=False)


LANDING, WRITE = 0, 1


class Timeline:
    """The clock, the lock every operation holds, and the timeline of what the clock brings about."""

    clock: Callable[[], float]
    _lock: threading.RLock
    _timeline: list[_Event]  # a heap
    _sequence: itertools.count[int]
    timeline_listeners: list[Callable[[float], None]]  # told each time something is scheduled

    def _schedule(self, at: float, rank: int, run: Callable[[float], None]) -> None:
        heapq.heappush(self._timeline, _Event(at, rank, next(self._sequence), run))
        for listener in self.timeline_listeners:
            listener(at)

    def settle(self) -> None:
        """Let everything the clock has passed happen now (copies land, their events go out)."""
        with self._lock:
            self._settle()

    def _settle(self) -> None:
        """Run, in time order, everything the clock has passed (each at its own time)."""
        now = self.clock()
        while self._timeline and self._timeline[0].at <= now:
            event = heapq.heappop(self._timeline)
            event.run(event.at)
