"""A virtual clock: minutes of copying pass in milliseconds.

Single-threaded use (tests, the demo) just calls advance() or sleep(). Concurrent executions
(the burst benchmark) use it as a conservative discrete-event scheduler: participants join()
and leave(); a sleeper blocks until every participant is asleep, then the clock jumps to the
earliest wake-up time and wakes exactly the sleepers that are due.

A sleep can also be cut short: `sleep(seconds, alarm)` returns early when another thread rings the
alarm (a task token sent back before its task's timeout, an earlier delivery for the runner's event
bus). A sleep of `math.inf` lasts until its alarm rings; it never makes the clock jump.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading


class Alarm:
    """Rings one sleep early (or the next one, if none is under way yet)."""

    def __init__(self) -> None:
        self.rung = False
        self._sleeper: _Sleeper | None = None


class _Sleeper:
    __slots__ = ("alarm", "done", "wake")

    def __init__(self, alarm: Alarm | None) -> None:
        self.wake = threading.Event()
        self.alarm = alarm
        self.done = False  # woken by the clock or by its alarm: it counts as running again


class VirtualClock:
    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._lock = threading.Lock()
        self._running = 0  # participants not asleep
        self._sleepers: list[tuple[float, int, _Sleeper]] = []
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

    def sleep(self, seconds: float, alarm: Alarm | None = None) -> bool:
        """Block this participant until `seconds` of virtual time have passed, or until `alarm` rings;
        True when the alarm cut it short (or had rung before it began)."""
        if alarm is not None and alarm.rung:
            return True
        if seconds <= 0:
            return False
        sleeper = _Sleeper(alarm)
        with self._lock:
            if alarm is not None:
                if alarm.rung:
                    return True
                alarm._sleeper = sleeper
            heapq.heappush(self._sleepers, (self._now + seconds, next(self._ids), sleeper))
            self._running -= 1
            self._maybe_jump()
        sleeper.wake.wait()
        return alarm is not None and alarm.rung

    def ring(self, alarm: Alarm) -> None:
        """Wake the sleep waiting on `alarm` now (its entry stays in the heap, skipped when due)."""
        with self._lock:
            alarm.rung = True
            sleeper = alarm._sleeper
            if sleeper is not None and not sleeper.done:
                sleeper.done = True
                self._running += 1
                sleeper.wake.set()

    def _maybe_jump(self) -> None:
        self._drop_woken()
        if self._running <= 0 and self._sleepers and math.isfinite(self._sleepers[0][0]):
            self._now = max(self._now, self._sleepers[0][0])
            self._wake_due()

    def _drop_woken(self) -> None:
        while self._sleepers and self._sleepers[0][2].done:
            heapq.heappop(self._sleepers)

    def _wake_due(self) -> None:
        # Woken sleepers count as running at once, so the clock cannot jump past their work.
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, sleeper = heapq.heappop(self._sleepers)
            if not sleeper.done:
                sleeper.done = True
                self._running += 1
                sleeper.wake.set()
