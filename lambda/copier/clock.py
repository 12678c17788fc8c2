"""The one place the function reads the time or waits, so the local runner can run it on a virtual clock."""

from __future__ import annotations

import time


def now() -> float:
    return time.time()


def sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)
