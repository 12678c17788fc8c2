"""When dispatcher runs happen and how far each plans; and, from the pacing item a run leaves, whether newly
admitted copies want a run now rather than wait for the next scheduled one. Pure: benchmarks/scale/ asks too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from copier import pacing

PERIOD_SECONDS = 60  # infra/dispatcher.py's schedule
# A run plans past the next one by what an execution takes to reach its slot (StartExecution, a cold start)
# plus the lead: the schedule never idles between runs in a backlog.
START_MARGIN_SECONDS = 5
HORIZON_SECONDS = PERIOD_SECONDS + pacing.HOLD_LEAD_SECONDS + START_MARGIN_SECONDS
# Admission runs the dispatcher for newly admitted copies at most this often while the schedule ends before
# the next scheduled run.
CATCH_UP_SECONDS = 10.0


def busy_until(state: Mapping[str, Any] | None) -> float | None:
    """Until when the schedule is planned: its last slot, or the next run's, when the last run left copies."""
    if not state:
        return None
    times = [float(state[name]) for name in ("nextSlot", "busyUntil") if name in state]
    return max(times) if times else None


def wants_a_run(state: Mapping[str, Any] | None, now: float) -> bool:
    """Whether newly admitted copies should have a run now rather than wait for the next scheduled one: the
    schedule runs out within the start margin (nothing planned, or not for long), or it ends before the next
    scheduled run and the last run is CATCH_UP_SECONDS old (a burst's events arriving after the run that
    planned everything there was: their copies go on the schedule without a gap, a run every few seconds at most)."""
    until = busy_until(state)
    if until is None or until < now + START_MARGIN_SECONDS:
        return True
    ran = (state or {}).get("runAt")
    return ran is not None and until < float(ran) + PERIOD_SECONDS and now >= float(ran) + CATCH_UP_SECONDS
