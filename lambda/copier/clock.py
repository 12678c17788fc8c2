"""The one place the function reads the time or waits, so the local runner can run it on a virtual clock.

`now` and `sleep` are the copy schedule's time (virtual offline); `monotonic` and `pause` are real time, for
pacing API calls against quotas that count real seconds (the local runner leaves them real).
"""

from __future__ import annotations

import time
from threading import Lock


def now() -> float:
    return time.time()


def sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def monotonic() -> float:
    return time.monotonic()


def pause(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


class Pacer:
    """At most `rate` calls a second (real time: the quotas these calls count against count real seconds)
    across the threads that share it, until `budget` seconds after it was made."""

    def __init__(self, rate: float, budget: float) -> None:
        self._lock = Lock()
        self._interval = 1.0 / rate
        self._next = monotonic()
        self.deadline = self._next + budget

    def turn(self) -> bool:
        """Wait for this call's turn; False once the budget is spent."""
        with self._lock:
            at, self._next = self._next, max(self._next, monotonic()) + self._interval
        if at > self.deadline:
            return False
        pause(at - monotonic())
        return True

    def spent(self) -> bool:
        return max(self._next, monotonic()) > self.deadline
