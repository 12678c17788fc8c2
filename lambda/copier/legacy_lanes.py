"""Backlog entries written before lanes existed, labelled for the lanes' index: nothing unlaned is left behind.

0.2.0 wrote PENDING journal entries with no lane, and its code keeps writing some after the deploy: a backfill
execution runs its pages on the function version it started with (up to a day; then it goes on as a new
execution, on the new code), a failed one can be redriven on that version for 14 days (versions are pruned
after 17), and an operator's older CLI re-admits failures with `retry`. The lanes' index (journalBacklog) does
not hold them, so the dispatcher would never see them. Each scheduled dispatcher run therefore moves a cursor
forward through every PENDING entry (journalByStatus, oldest change first) and labels each one without a lane
label in its lane (journal.lane_of: bulk if a backfill admitted it, else live), on condition that it is still
PENDING and still unlabelled; the entry keeps its place (its updatedAt). Every entry this release writes into
PENDING is labelled already: the cursor reads it once more, and writes nothing.

- The cursor (`labelledAt`, `labelledId` on the pacing item: the journalByStatus key of the last entry read)
  stays LAG_SECONDS behind now. A writer takes an entry's updatedAt just before its write, and the index
  holds the entry about a second later: no write in flight is passed.
- A run reads at most READS_PER_RUN entries (a projection of a few attributes, PAGE at a time) and writes at
  most LABELS_PER_SECOND labels (real seconds), for as long as the dispatcher gives it. Each label also
  rewrites the entry in journalByStatus's one PENDING partition and in its lane's partition of the lanes'
  index, each good for about 1,000 writes a second: a fifth of that leaves the rest to admissions (~250 a
  second in a burst), backfill pages and the dispatcher's marks.

So a 1M backlog of 0.2.0 is labelled at up to 200 entries a second (docs/operations.md, Upgrading: about
1.5 hours at the default quota, where a run has ~40 s to spare); what is labelled is dispatched by the next run.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from copier import clock, journal, pacing, table

LAG_SECONDS = 120.0
# A run labels until this long after it began (the function times out at 60 s), after its starts.
UNTIL_SECONDS = 50.0
READS_PER_RUN = 20_000
PAGE = 500
LABELS_PER_SECOND = 200.0
WORKERS = 8
CURSOR_AT, CURSOR_ID = "labelledAt", "labelledId"


@dataclass(frozen=True)
class Labelling:
    read: int  # PENDING entries the cursor went past
    labelled: int  # of those, labelled by this run (0.2.0's)
    caught_up: bool  # the cursor is LAG_SECONDS behind now: every older PENDING entry is labelled


def cursor(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where the last run stopped: the journalByStatus key of the last entry it read (None: from the oldest)."""
    if CURSOR_ID not in state:
        return None
    return {"journalStatus": journal.JournalStatus.PENDING.value, "updatedAt": state[CURSOR_AT], "id": state[CURSOR_ID]}


def label_unlaned(state: Mapping[str, Any], now: float, *, seconds: float) -> Labelling:
    """Label the PENDING entries 0.2.0 wrote, from the pacing item's cursor (`state`, as the run read it) on, for
    at most `seconds` of real time; move the cursor past what was read, on condition no other run moved it."""
    start = cursor(state)
    after, read, labelled, caught_up = start, 0, 0, False
    pacer = clock.Pacer(LABELS_PER_SECOND, seconds)

    def label(entry: dict[str, Any]) -> bool | None:
        """Labelled (True), found labelled or no longer PENDING (False), or left for the next run (None)."""
        if journal.BACKLOG_LANE in entry:
            return False
        return journal.label(entry) if pacer.turn() else None

    while read < READS_PER_RUN and not pacer.spent():
        entries, more = journal.pending_after(after, now - LAG_SECONDS, min(PAGE, READS_PER_RUN - read))
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            outcomes = list(pool.map(label, entries))
        done = outcomes.index(None) if None in outcomes else len(outcomes)  # the cursor stops before the first left
        labelled += sum(bool(outcome) for outcome in outcomes[:done])
        read += done
        if done:
            after = journal.status_index_key(entries[done - 1])
        if done < len(entries):
            break
        if not more:
            caught_up = True
            break
    if after != start and after is not None:
        _move(start, after)
    return Labelling(read, labelled, caught_up)


def _move(start: dict[str, Any] | None, after: dict[str, Any]) -> None:
    """The cursor on the pacing item, unless another run (a schedule delivered twice) moved it meanwhile."""
    values = {":at": Decimal(str(after["updatedAt"])), ":id": str(after["id"])}
    condition = f"attribute_not_exists({CURSOR_ID})"
    if start is not None:
        condition = f"{CURSOR_ID} = :was"
        values[":was"] = str(start["id"])
    table.call_if(
        "update_item",
        Key={"id": {"S": pacing.PACING_KEY}},
        UpdateExpression=f"SET {CURSOR_AT} = :at, {CURSOR_ID} = :id",
        ConditionExpression=condition,
        ExpressionAttributeValues=table.to_dynamodb(values),
    )
