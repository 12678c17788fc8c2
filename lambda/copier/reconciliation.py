"""Reconciliation (action `reconcile`, run by a schedule rule): HealthImaging's events are best
effort, so a scheduled sweep finds the image sets no event announced and admits them as the event
would have.

Each sweep searches the image sets created (or updated, when "Image Set Updated" triggers copies) in
the last two intervals, up to a grace period ago (events in flight get that long to be journaled),
so consecutive windows overlap. Every one without a journal entry goes through the same copy policy
as an event (intake.plan_for_image_set: copy-storm guard, merge-into-primary) into the backlog's live lane,
where the dispatcher starts it at the quota's pace; admission is conditional, so two sweeps never admit it
twice. One a backfill admitted (it waits in the bulk lane) is promoted to the live lane, as its event would.

Cost per sweep: SearchImageSets pages of 50 for the image sets in the window, one journal read per
image set found; for each one missed, the copy-storm guard's index query and one journal write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from copier import clock, healthimaging, intake, journal
from copier.journal import JournalStatus, Lane
from copier.settings import CopyPolicy, load_settings

logger = Logger(child=True)
metrics = Metrics()

GRACE_SECONDS = 300
# One sweep stays well inside the function's timeout; more missed than this is a backfill's work.
MAX_ADMITTED_PER_SWEEP = 1_000
UPDATED = "Image Set Updated"


@dataclass(frozen=True)
class SweepResult:
    image_sets_seen: int
    missed: int  # image set versions the policy copies that no event announced: now in the backlog
    promoted: int  # of those found in the journal, waiting in the bulk lane (a backfill's): now live


def sweep() -> SweepResult:
    settings = load_settings()
    until = clock.now() - GRACE_SECONDS
    since = until - 2 * settings.reconciliation_interval_minutes * 60
    field = "updatedAt" if UPDATED in settings.trigger_detail_types else "createdAt"
    filters = [
        healthimaging.between(field, datetime.fromtimestamp(since, tz=UTC), datetime.fromtimestamp(until, tz=UTC))
    ]
    if settings.copy_policy is CopyPolicy.MERGE_INTO_PRIMARY:
        filters.append(healthimaging.equal("isPrimary", False))
    summaries = [] if settings.copy_policy is CopyPolicy.OFF else healthimaging.search(settings.datastore_id, filters)
    missed = promoted = 0
    for summary in summaries:
        if missed >= MAX_ADMITTED_PER_SWEEP:
            logger.warning(
                "Sweep stopped at its cap: run a backfill for the window", extra={"cap": MAX_ADMITTED_PER_SWEEP}
            )
            break
        image_set_id, version = str(summary["imageSetId"]), str(summary["version"])
        entry = journal.read(image_set_id, version)
        if entry is not None:
            # An event (or an earlier sweep) got there; or a backfill did, and its copy waits in the bulk lane:
            # a new image set, whose event never came, goes among the new imports.
            if entry.get("journalStatus") == JournalStatus.PENDING and journal.lane_of(entry) is Lane.BULK:
                promoted += journal.promote(image_set_id, version)
            continue
        plan = intake.plan_for_image_set(
            image_set_id,
            version,
            is_primary=bool(summary.get("isPrimary")),
            why="missed event, found by reconciliation",
            lane=Lane.LIVE,
        )
        if not plan.skip:
            missed += 1  # skipped ones (e.g. this pipeline's own output) were not missed
    metrics.add_metric(name="MissedEventsFound", unit=MetricUnit.Count, value=missed)
    logger.info("Reconciliation sweep", extra={"imageSetsSeen": len(summaries), "missed": missed, "promoted": promoted})
    return SweepResult(len(summaries), missed, promoted)
