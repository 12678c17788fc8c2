"""Every figure the scale model assumes, with its source: the services' quotas (HealthImaging's CopyImageSet and each
read a copy makes: GetImageSet, GetImageSetMetadata, SearchImageSets; Step Functions', Lambda's), latencies, the SQS
event sources' figures and the stack's own settings (`Limits`; `Limits.at(quota)` the limits at a CopyImageSet quota,
the read quotas as given: AWS's defaults unless raised). A new quota or limit gets its figure here and its line in
`Limits.assumptions`, printed with the results; its mechanism goes in services.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from copier import pacing
from copier.budgets import BUDGET_MARGIN, CALLS_PER_COPY, Operation, PlannedRate, planned_rate
from copier.dispatcher import schedule, starting
from copier.settings import PAGING_SEARCHES_PER_SECOND, CopyPolicy
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


# HealthImaging's default read quotas (throttling limits; burst: twice the rate); budgets keep copier.budgets'
# BUDGET_MARGIN under them.
READ_QUOTAS = {Operation.GET_IMAGE_SET: 25.0, Operation.GET_IMAGE_SET_METADATA: 50.0, Operation.SEARCH_IMAGE_SETS: 25.0}
# The reconciliation sweep: every reconciliationIntervalMinutes, a SearchImageSets page per 50 image sets created in
# the last two intervals up to 5 minutes ago (copier.reconciliation), one page after another.
SWEEP_PAGE_SIZE = 50


def raised_reads(copy_rate: float, policy: CopyPolicy) -> dict[Operation, float]:
    """The read quotas docs/configuration.md ("Read budgets") tells an operator to ask for with a copy rate: each
    operation's calls a second at that rate (SearchImageSets' with the paging's share) over the margin, never under
    AWS's default."""
    calls = CALLS_PER_COPY[policy]
    paging = {Operation.SEARCH_IMAGE_SETS: PAGING_SEARCHES_PER_SECOND}
    return {
        operation: max(
            default,
            float(math.ceil((copy_rate * calls.get(operation, 0) + paging.get(operation, 0.0)) / BUDGET_MARGIN)),
        )
        for operation, default in READ_QUOTAS.items()
    }


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
    policy: CopyPolicy = CopyPolicy.SNAPSHOT
    get_image_set_quota: float = READ_QUOTAS[Operation.GET_IMAGE_SET]
    get_image_set_metadata_quota: float = READ_QUOTAS[Operation.GET_IMAGE_SET_METADATA]
    search_image_sets_quota: float = READ_QUOTAS[Operation.SEARCH_IMAGE_SETS]
    read_latency: tuple[float, float] = (0.01, 0.04)
    reconciliation_interval: float = SETTINGS.reconciliation_interval_minutes * 60.0
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
    def at(cls, quota: float, *, reads: str = "default", **overrides: Any) -> Limits:
        """The limits at a CopyImageSet quota: its burst, the rate docs/configuration.md recommends, unless given;
        the read quotas AWS's defaults (`reads="default"`), or raised with the rate as docs/configuration.md says
        (`reads="raised"`: raised_reads), unless given one by one."""
        burst = overrides.pop("copy_burst", None) or default_burst(quota)
        rate = overrides.pop("copy_rate", None) or default_rate(quota, burst)
        policy = CopyPolicy(overrides.pop("policy", None) or CopyPolicy.SNAPSHOT)
        quotas = raised_reads(rate, policy) if reads == "raised" else dict(READ_QUOTAS)
        read_quotas = {
            field: overrides.pop(field, None) or quotas[operation] for operation, field in READ_QUOTA_FIELDS.items()
        }
        return cls(copy_quota=quota, copy_burst=burst, copy_rate=rate, policy=policy, **read_quotas, **overrides)

    def read_quota(self, operation: Operation) -> float:
        return float(getattr(self, READ_QUOTA_FIELDS[operation]))

    @property
    def planned(self) -> PlannedRate:
        """The dispatcher's planned rate (copier.budgets.planned_rate) under the budgets the stack deploys with:
        copyRatePerSecond, and each read quota less the margin (SearchImageSets' less the paging's share)."""
        budgets = {operation: BUDGET_MARGIN * self.read_quota(operation) for operation in READ_QUOTA_FIELDS}
        budgets[Operation.SEARCH_IMAGE_SETS] -= PAGING_SEARCHES_PER_SECOND
        return planned_rate(self.policy, {**budgets, Operation.COPY_IMAGE_SET: self.copy_rate})

    def read_limits(self) -> dict[Operation, float]:
        """Copies a second each read quota allows: the quota over the calls a copy makes (the policy's reads)."""
        calls = CALLS_PER_COPY[self.policy]
        return {
            operation: self.read_quota(operation) / calls[operation]
            for operation in READ_QUOTA_FIELDS
            if calls.get(operation)
        }

    @property
    def physical_limit(self) -> float:
        """Copies a second at best: the TPS quota, the concurrent copies over a copy's duration, or what each read's
        quota allows over the calls a copy makes, whichever is lowest."""
        return min(self.copy_quota, self.concurrent_copies / self.copy_seconds, *self.read_limits().values())

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
                f"{self.physical_limit:.4g} copies/s",
                "min(TPS quota, concurrent copies / a copy's duration, each read quota / its calls a copy)",
            ),
            (
                "read quotas: GetImageSet / GetImageSetMetadata / SearchImageSets",
                " / ".join(f"{self.read_quota(o):g}/s" for o in READ_QUOTA_FIELDS) + ", bursts 2 x",
                "--get-image-set-quota etc.; 25 / 50 / 25 by default (throttling limits); raised: what"
                " docs/configuration.md says to ask for with the rate",
            ),
            (
                "copyPolicy: calls a copy",
                f"{self.policy}: "
                + ", ".join(f"{o} {n}" for o, n in CALLS_PER_COPY[self.policy].items())
                + f"; planned rate {self.planned.rate:.3g}/s ({self.planned.binding} binds)",
                "copier/budgets.py (tests/test_budgets.py: the emulator's call log); budgets 0.96 x each quota",
            ),
            (
                "reconciliation sweep",
                f"every {self.reconciliation_interval / 60:g} min, a SearchImageSets page per {SWEEP_PAGE_SIZE} image"
                " sets of its window",
                "copier/reconciliation.py",
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
                "a read throttled",
                f"{self.read_attempts} attempts, U(0,1) x min(2^i, 20) s, then the transient retrier (the step again);"
                f" {self.read_latency[0] * 1000:g}-{self.read_latency[1] * 1000:g} ms a read",
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


# Each read's quota, as a field of Limits.
READ_QUOTA_FIELDS = {
    Operation.GET_IMAGE_SET: "get_image_set_quota",
    Operation.GET_IMAGE_SET_METADATA: "get_image_set_metadata_quota",
    Operation.SEARCH_IMAGE_SETS: "search_image_sets_quota",
}
