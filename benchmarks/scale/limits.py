"""Every figure the scale model assumes, with its source: the services' quotas (HealthImaging's CopyImageSet and
GetImageSet, Step Functions', Lambda's), latencies, the SQS event sources' figures and the stack's own settings
(`Limits`; `Limits.at(quota)` the limits at a CopyImageSet quota). A new quota or limit gets its figure here and
its line in `Limits.assumptions`, printed with the results; its mechanism goes in services.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from copier import pacing
from copier.dispatcher import schedule, starting
from infra.settings import EXECUTION_TIMEOUT_DAYS, StackSettings

DAY = 86_400.0
SETTINGS = StackSettings(datastore_id="0" * 32)  # the stack's defaults
# The smallest Regions' Step Functions quotas (outside us-east-1, us-west-2, eu-west-1; eu-west-2 and
# ap-southeast-2 run HealthImaging): docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
START_EXECUTION_BUCKET, START_EXECUTION_REFILL = 800.0, 150.0
TRANSITION_BUCKET, TRANSITION_REFILL = 800.0, 500.0
SEND_TASK_SUCCESS_REFILL = 300.0  # same page: bucket 1,500 (us-east-1, us-west-2, eu-west-1: 3,000 / 500)


def default_burst(quota: float) -> float:
    """HealthImaging's CopyImageSet burst: 1 at the default 0.25 TPS; a raised quota's assumed 4 s of it, as
    the throttling limits page shows for UpdateImageSetMetadata raised to 10 TPS (burst 40)."""
    return max(1.0, 4.0 * quota)


def default_rate(quota: float, burst: float) -> float:
    """docs/configuration.md, "Choosing copyRatePerSecond": 0.96 x the quota when its burst is 1 (every pair of
    calls must be 1/quota apart: the margin absorbs a late call), 0.99 x with a burst to absorb it."""
    return round(quota * (0.96 if burst < 2 else 0.99), 6)


@dataclass(frozen=True)
class Limits:
    """Every figure the model assumes; `assumptions()` prints them with their sources."""

    copy_quota: float = 0.25
    copy_burst: float = 1.0
    copy_rate: float = 0.24
    concurrent_copies: int = SETTINGS.concurrent_copy_quota
    bulk_minimum_share: float = SETTINGS.bulk_minimum_share
    copy_seconds: float = 45.0
    get_image_set_quota: float = 25.0
    start_execution: tuple[float, float] = (START_EXECUTION_BUCKET, START_EXECUTION_REFILL)
    transitions: tuple[float, float] = (TRANSITION_BUCKET, TRANSITION_REFILL)
    lambda_concurrency: int = 1_000
    cold_start: float = 0.6
    keep_alive: float = 600.0
    task_overhead: tuple[float, float] = (0.02, 0.05)
    task_work: tuple[float, float] = (0.06, 0.25)
    copy_call_latency: tuple[float, float] = (0.005, 0.03)
    transient_retry: tuple[float, float, int, float] = (2.0, 2.0, 6, 60.0)
    read_attempts: int = 4
    event_delay: tuple[float, float] = (0.5, 2.0)
    event_drop: float = 0.0
    completion_wait: int = SETTINGS.completion_wait_seconds
    poll_initial: int = SETTINGS.poll_initial_seconds
    poll_max: int = SETTINGS.poll_max_seconds
    max_wait: int = SETTINGS.max_wait_seconds
    execution_timeout: float = EXECUTION_TIMEOUT_DAYS * DAY
    reservations: int = pacing.RESERVATIONS_WITHOUT_THROTTLING + SETTINGS.throttle_retry_attempts
    dispatch_period: float = float(schedule.PERIOD_SECONDS)
    dispatch_jitter: float = 1.0
    start_call: float = 0.03
    ddb_read: float = 0.004
    ddb_write: float = 0.006
    queue_lag: float = 0.2
    # The SQS event sources' figures (infra/queues.py, infra/import_trigger.py, infra/copy_completion.py): literals
    # here, because importing the constructs loads the CDK; tests/test_scale_model.py checks they are the same.
    admission_batch: int = 10
    admission_concurrency: int = 2
    batching_window: float = 1.0  # both event sources' MaximumBatchingWindowInSeconds
    wake_batch: int = 10
    wake_events_per_second_per_batch: float = 15.0

    @classmethod
    def at(cls, quota: float, **overrides: Any) -> Limits:
        """The limits at a CopyImageSet quota: its burst, the rate docs/configuration.md recommends, a GetImageSet quota
        raised with it past the default, unless given."""
        burst = overrides.pop("copy_burst", None) or default_burst(quota)
        rate = overrides.pop("copy_rate", None) or default_rate(quota, burst)
        reads = overrides.pop("get_image_set_quota", None) or max(25.0, 2.0 * rate)
        return cls(copy_quota=quota, copy_burst=burst, copy_rate=rate, get_image_set_quota=reads, **overrides)

    @property
    def physical_limit(self) -> float:
        """Copies a second at best: the TPS quota, or the concurrent copies over a copy's duration."""
        return min(self.copy_quota, self.concurrent_copies / self.copy_seconds)

    @property
    def wake_concurrency(self) -> int:
        return max(2, math.ceil(self.copy_rate / self.wake_events_per_second_per_batch))

    def assumptions(self) -> list[tuple[str, str, str]]:
        """(figure, value, source) for every figure above, as printed."""
        warm = (self.task_overhead[0] + self.task_work[0], self.task_overhead[1] + self.task_work[1])
        retry = self.transient_retry
        return [
            (
                "CopyImageSet quota",
                f"{self.copy_quota:g}/s, burst {self.copy_burst:g}",
                "--quota; HealthImaging throttling limits (0.25/1 by default; a raised burst: 4 s of the rate, as"
                " UpdateImageSetMetadata 10/40)",
            ),
            (
                "copyRatePerSecond",
                f"{self.copy_rate:g}",
                "--rate; docs/configuration.md: 0.96 x quota, burst 1; 0.99 x above",
            ),
            (
                "concurrent copies per data store",
                f"{self.concurrent_copies:,}",
                "--concurrent-copies; HealthImaging service quotas (100 per data store by default, adjustable:"
                " L-0D1B2633)",
            ),
            ("a copy's duration", f"{self.copy_seconds:g} s", "--copy-seconds; offline.emulator default"),
            (
                "physical limit",
                f"{self.physical_limit:g} copies/s",
                "min(TPS quota, concurrent copies / a copy's duration)",
            ),
            (
                "GetImageSet quota",
                f"{self.get_image_set_quota:g}/s, burst {2 * self.get_image_set_quota:g}",
                "--get-image-set-quota; 25/50 by default (throttling limits), raised with the rate past 12.5 copies/s"
                " (docs/configuration.md: raise together)",
            ),
            (
                "StartExecution (Standard)",
                f"bucket {self.start_execution[0]:,.0f}, refill {self.start_execution[1]:,.0f}/s",
                "Step Functions quotas, the smallest Regions (us-east-1, us-west-2, eu-west-1: 1,300 / 300)",
            ),
            (
                "StateTransition (Standard)",
                f"bucket {self.transitions[0]:,.0f}, refill {self.transitions[1]:,.0f}/s; throttled ones wait",
                "same page, the smallest Regions (the largest: 5,000 / 1,500); new accounts have less",
            ),
            (
                "SendTaskSuccess",
                f"refill {SEND_TASK_SUCCESS_REFILL:,.0f}/s (printed against, not modelled)",
                "same page, the smallest Regions (the largest: 500/s)",
            ),
            ("Lambda concurrency", f"{self.lambda_concurrency:,}", "the account's default pool (Lambda quotas)"),
            ("Lambda task, warm", f"{warm[0] * 1000:.0f}-{warm[1] * 1000:.0f} ms uniform", "assumed"),
            ("cold start", f"+{self.cold_start * 1000:.0f} ms per new environment", "docs/figures.md: handler import"),
            ("idle environment kept", f"{self.keep_alive / 60:g} min", "assumed (not published)"),
            (
                "transient retrier",
                f"{retry[0]:g} s x{retry[1]:g}, max {retry[3]:g} s, {retry[2]} retries, full jitter",
                "infra/workflow_parts.py",
            ),
            (
                "GetImageSet throttled",
                f"{self.read_attempts} attempts, U(0,1) x min(2^i, 20) s, then the transient retrier",
                "copier/healthimaging.py (botocore standard mode)",
            ),
            (
                "completion event",
                f"U({self.event_delay[0]:g}, {self.event_delay[1]:g}) s after the copy lands; {self.event_drop:.0%}"
                " dropped",
                "--drop-events; EventBridge -> completion queue -> poller: assumed; HealthImaging: best effort",
            ),
            (
                "wake consumer",
                f"batches of {self.wake_batch}, {self.wake_concurrency} at a time, 20 ms an event",
                "infra/copy_completion.py; copier/wake.py",
            ),
            (
                "fallback waits",
                f"{self.completion_wait} s, then doubling from {self.poll_initial} s to {self.poll_max} s, within"
                f" {self.max_wait} s",
                "infra/settings.py; copy_status.fallback_wait",
            ),
            (
                "pushed-back call",
                f"ReserveCopySlot: a slot after the dispatcher's; fails after {self.reservations} slots",
                "infra/copy_workflow.py; copier/pacing.py",
            ),
            (
                "adaptive pace",
                "pacing.adapted at each run: slowed to the share that went through (at most halving), or sped"
                " up by a doubling step",
                "copier/pacing.py",
            ),
            (
                "dispatch run",
                f"rate(1 minute) +0-{self.dispatch_jitter:g} s; lease, plan (planning.plan_run), one pacing write,"
                f" starts at {starting.START_RATE:g}/s ({self.start_call * 1000:g} ms each,"
                f" {starting.START_WORKERS} at a time), STARTED marks, lease back",
                "copier/dispatcher/",
            ),
            (
                "admission",
                f"SQS batches of {self.admission_batch}, {self.admission_concurrency} at a time, a read + a write an"
                f" event; visible {self.queue_lag:g} s after it",
                "infra/import_trigger.py; copier/intake.py",
            ),
            ("DynamoDB latency", f"read {self.ddb_read * 1000:g} ms, write {self.ddb_write * 1000:g} ms", "assumed"),
            ("execution timeout", f"{self.execution_timeout / DAY:g} days", "infra/settings.py"),
        ]
