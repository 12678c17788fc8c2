"""A virtual clock: minutes of copying pass in milliseconds.

Single-threaded use (tests, the demo) just calls advance(). Concurrent executions (the
burst benchmark) use it as a conservative discrete-event scheduler: a sleeper blocks until
every participant is asleep, then the clock jumps to the earliest wake-up time.
"""

from __future__ import annotations

import heapq
import itertools
import threading


class VirtualClock:
    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._cond = threading.Condition()
        self._running = 0  # participants not asleep
        self._sleepers: list[tuple[float, int]] = []
        self._ids = itertools.count()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._now += max(seconds, 0.0)
            self._cond.notify_all()

    # --- discrete-event mode -------------------------------------------------------
    def join(self) -> None:
        """A participant (an execution, the driver) starts running."""
        with self._cond:
            self._running += 1

    def leave(self) -> None:
        with self._cond:
            self._running -= 1
            self._maybe_jump()

    def sleep(self, seconds: float) -> None:
        """Block this participant until the virtual time has passed `seconds`."""
        with self._cond:
            wake_at = self._now + max(seconds, 0.0)
            entry = (wake_at, next(self._ids))
            heapq.heappush(self._sleepers, entry)
            self._running -= 1
            self._maybe_jump()
            while self._now < wake_at:
                self._cond.wait()
            # Leave the heap and count as running in one step, so the clock cannot
            # jump past work this wake-up is about to do.
            self._sleepers.remove(entry)
            heapq.heapify(self._sleepers)
            self._running += 1

    def _maybe_jump(self) -> None:
        if self._running == 0 and self._sleepers:
            earliest = self._sleepers[0][0]
            if earliest > self._now:
                self._now = earliest
            self._cond.notify_all()
