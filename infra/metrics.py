"""The copy function's EMF metrics (Powertools Metrics in lambda/copier/), as the dashboard plots them.

The function takes its namespace and service from the environment CopyFunction sets; Powertools
adds the service as the metrics' only dimension. tests/test_stack_dashboard.py checks these names
against the add_metric calls in the function's code, both ways.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

NAMESPACE = "HealthImagingCopy"
SERVICE = "healthimaging-copy"  # the app's own construct's; others add their path (infra/naming.py)
SERVICE_DIMENSION = "service"

COPIES = ("CopiesStarted", "CopiesCompleted", "CopiesFailed", "ForcedCopies")
FORCE_DECISIONS = ("ForcesAuthorised", "ForceRefusals")
PUSHBACK = ("CopyConflicts", "CopyThrottles", "CopyQuotaExceeded")
UNCERTAIN_OUTCOMES = ("AmbiguousCopyOutcomes", "UndecidedCopyOutcomes", "DuplicatesSuppressed", "CopyWaitTimeouts")
# Events into the copy journal's backlog (the admission queue's consumer), and copies out of each of its lanes (the
# dispatcher: live, new imports; bulk, backfills and large retries).
ADMISSION = ("CopiesAdmitted", "CopiesSkipped")
DISPATCHED = ("LiveCopiesDispatched", "BulkCopiesDispatched")
# Written by each reconciliation sweep: copies no event announced.
RECONCILIATION = ("MissedEventsFound",)
# Written by each backfill page: existing image sets looked at (their copies go through the backlog).
BACKFILL = ("BackfillImageSetsSeen",)
# Written by each dispatcher run, per lane: the age of the lane's oldest PENDING journal entry, and how late it
# is: how long it waited beyond what the copies admitted before it explain at the rate the lane is promised
# (copier.dispatcher.planning.lateness: the live lane, the rate the settings promise; the bulk lane, what the live lane
# leaves of it, at least bulkMinimumShare). The live lane's lateness pages; the bulk lane's is information.
LIVE_BACKLOG = ("LiveOldestPendingAgeSeconds", "LiveBacklogLateSeconds")
BULK_BACKLOG = ("BulkOldestPendingAgeSeconds", "BulkBacklogLateSeconds")
# Written by each scheduled dispatcher run: PENDING entries of 0.2.0 (no lane) it labelled for the lanes' index
# (copier.legacy_lanes): after an upgrade, until none are left.
LEGACY = ("LegacyEntriesLabelled",)
# Written by each dispatcher run: the adaptive CopyImageSet pace (copies a second), at most copyRatePerSecond.
PACE = ("CopyPace",)
# Written by each dispatcher run: the copies a second it plans (copier.budgets: the tightest of copyRatePerSecond and
# each HealthImaging read's budget over the reads a copy makes under the copy policy), and what each operation's
# budget allows (a policy's operations only): the lowest binds.
PLANNED_RATE = (
    "PlannedCopyRate",
    "CopyRateAllowedByCopyImageSet",
    "CopyRateAllowedByGetImageSet",
    "CopyRateAllowedByGetImageSetMetadata",
    "CopyRateAllowedBySearchImageSets",
)
# HealthImaging's copy outcome events (copier.wake): copies woken, events that woke none, tokens no longer
# waited on; and, from CheckCopy, copies found ended when their fallback wait ran out (no event came), and
# AwaitCopy's writes that failed other than on their condition (the copy waited before it tried again).
COMPLETION = (
    "CopiesWoken",
    "CompletionEventsIgnored",
    "StaleWakeTokens",
    "CompletionEventsMissed",
    "AwaitCopyFailures",
)


def function_metric(
    name: str, *, service: str, statistic: str, period: Duration, label: str | None = None
) -> cloudwatch.Metric:
    """One of the function's EMF metrics, with the dimension Powertools gives it (the function's service name:
    infra/naming.py)."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={SERVICE_DIMENSION: service},
        statistic=statistic,
        period=period,
        label=label,
    )
