"""A virtual clock: minutes of copying pass in milliseconds.

Single-threaded use (tests, the demo) just calls advance() or sleep(). Concurrent executions
(the burst benchmark) use it as a conservative discrete-event scheduler: participants join()
and leave(); a sleeper blocks until every participant is asleep, then the clock jumps to the
earliest wake-up time and wakes exactly the sleepers that are due.
"""

from __future__ import annotations

import heapq
import itertools
import threading


class VirtualClock:
    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._lock = threading.Lock()
        self._running = 0  # participants not asleep
        self._sleepers: list[tuple[float, int, threading.Event]] = []
        self._ids = itertools.count()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(seconds, 0.0)
            self._wake_due()

    def join(self) -> None:
        """A participant (an execution, or a driver holding the clock still) starts running."""
        with self._lock:
            self._running += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            self._maybe_jump()

    def sleep(self, seconds: float) -> None:
        """Block this participant until `seconds` of virtual time have passed."""
        if seconds <= 0:
            return
        wake = threading.Event()
        with self._lock:
            heapq.heappush(self._sleepers, (self._now + seconds, next(self._ids), wake))
            self._running -= 1
            self._maybe_jump()
        wake.wait()

    def _maybe_jump(self) -> None:
        if self._running <= 0 and self._sleepers:
            self._now = max(self._now, self._sleepers[0][0])
            self._wake_due()

    def _wake_due(self) -> None:
        # Woken sleepers count as running at once, so the clock cannot jump past their work.
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, wake = heapq.heappop(self._sleepers)
            self._running += 1
            wake.set()
