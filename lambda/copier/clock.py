"""The one place the function reads the time or waits, so the local runner can run it on a virtual clock.

`now` and `sleep` are the copy schedule's time (virtual offline); `monotonic` and `pause` are real time, for
pacing API calls against quotas that count real seconds (the local runner leaves them real).
"""

from __future__ import annotations

import time


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
