"""Ended executions settled, once a quarter of an hour: a STARTED entry whose execution ended without saying
so becomes FAILED, so that nothing stays STARTED forever nor holds a permit of the concurrent-copy quota."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from copier import journal
from copier.dispatcher.starting import step_functions
from copier.journal import JournalStatus

logger = Logger(child=True)

# STARTED entries unchanged this long have their executions looked at, a few a run (copies take minutes).
SETTLE_AFTER_SECONDS = 3_600
SETTLE_BATCH = 25
SETTLE_EVERY_SECONDS = 900  # a run settles ended executions once a quarter of an hour
ENDED_WITHOUT_A_WORD = ("FAILED", "TIMED_OUT", "ABORTED")


def settle_ended_executions(now: float) -> None:
    """A STARTED entry whose execution ended without saying so (aborted by hand, timed out, failed before
    its first step) becomes FAILED, so that `ops.cli retry` finds it: nothing stays STARTED forever, nor
    holds a permit of the concurrent-copy quota."""
    for entry in journal.oldest(JournalStatus.STARTED, SETTLE_BATCH, changed_before=now - SETTLE_AFTER_SECONDS):
        arn = entry.get("executionId")
        if not arn:
            continue
        status = step_functions().describe_execution(executionArn=arn)["status"]
        if status in ENDED_WITHOUT_A_WORD:
            journal.record(
                str(entry["journalSourceId"]),
                str(entry["sourceVersionId"]),
                JournalStatus.FAILED,
                only_from=(JournalStatus.STARTED,),
                error=f"Execution{status.title().replace('_', '')}",
            )
            logger.warning("Execution ended without recording its copy", extra={"execution": arn, "status": status})
