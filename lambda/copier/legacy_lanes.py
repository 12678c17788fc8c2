"""Backlog entries written before lanes existed, labelled for the lanes' index: nothing unlaned is left behind.

0.2.0 wrote PENDING journal entries with no lane, and its code keeps writing some after the deploy: a backfill
execution runs its pages on the function version it started with (up to a day; then it goes on as a new
execution, on the new code), a failed one can be redriven on that version for 14 days (versions are pruned
after 17), and an operator's older CLI re-admits failures with `retry`. The lanes' index (journalBacklog) does
not hold them, so the dispatcher would never see them. Each scheduled dispatcher run therefore moves two cursors
forward through the PENDING entries (journalByStatus, oldest change first) and labels each one without a lane
label in its lane (journal.lane_of: bulk if a backfill admitted it, else live), on condition that it is still
PENDING and still unlabelled; the entry keeps its place (its updatedAt). Every entry this release writes into
PENDING is labelled already: a cursor reads it once more, and writes nothing.

- The head starts an hour before the first labelling run and stays LAG_SECONDS behind now: 0.2.0's last imports
  before the deploy are labelled by the first runs, not after the whole backlog 0.2.0 left, and so is whatever its
  code writes after the deploy. A writer takes an entry's updatedAt just before its write, and the index holds
  the entry about a second later: no write in flight is passed.
- The tail goes from the oldest entry up to where the head began: the backlog 0.2.0 left, with the time the head
  leaves (nothing in steady state), and then has nothing more to read.
- Each cursor is the journalByStatus key of the last entry it read (`labelHeadAt`/`labelHeadId`,
  `labelTailAt`/`labelTailId` on the pacing item, the head's start `labelHeadFrom`): entries of one instant across
  pages are each read once.
- A run reads at most READS_PER_RUN entries (a projection of a few attributes, PAGE at a time) and writes at
  most LABELS_PER_SECOND labels (real seconds), for as long as the dispatcher gives it. Each label also
  rewrites the entry in journalByStatus's one PENDING partition and in its lane's partition of the lanes'
  index, each good for about 1,000 writes a second: a fifth of that leaves the rest to admissions (~250 a
  second in a burst), backfill pages and the dispatcher's marks.

So a 1M backlog of 0.2.0 is labelled at up to 200 entries a second (docs/operations.md, Upgrading: about 2 hours
at the default quota, where a run has ~40 s to spare); what is labelled is dispatched by the next run.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from copier import clock, journal, pacing, table

LAG_SECONDS = 120.0
# The head starts this long before the first labelling run: 0.2.0's last imports first.
HEADSTART_SECONDS = 3_600.0
# A run labels until this long after it began (the function times out at 60 s), after its starts.
UNTIL_SECONDS = 50.0
READS_PER_RUN = 20_000
PAGE = 500
LABELS_PER_SECOND = 200.0
WORKERS = 8
HEAD_FROM = "labelHeadFrom"


@dataclass(frozen=True)
class Cursor:
    """One forward pass over the PENDING entries: where it is kept on the pacing item."""

    at: str
    key: str

    def position(self, state: Mapping[str, Any]) -> dict[str, Any] | None:
        """The journalByStatus key of the last entry it read (None: from the start of its range)."""
        if self.key not in state:
            return None
        return {
            "journalStatus": journal.JournalStatus.PENDING.value,
            "updatedAt": state[self.at],
            "id": state[self.key],
        }


HEAD = Cursor("labelHeadAt", "labelHeadId")
TAIL = Cursor("labelTailAt", "labelTailId")


@dataclass(frozen=True)
class Labelling:
    read: int  # PENDING entries the cursors went past
    labelled: int  # of those, labelled by this run (0.2.0's)
    caught_up: bool  # the head is LAG_SECONDS behind now and the tail at the head's start: none older unlabelled


def label_unlaned(state: Mapping[str, Any], now: float, *, seconds: float) -> Labelling:
    """Label the PENDING entries 0.2.0 wrote, the head's first, then the tail's, from the pacing item's cursors
    (`state`, as the run read it) on, for at most `seconds` of real time; move each cursor past what it read, on
    condition no other run moved it."""
    head_from = _head_from(state, now)
    pacer = clock.Pacer(LABELS_PER_SECOND, seconds)
    head = _pass(HEAD, state, pacer, since=head_from, until=now - LAG_SECONDS, reads=READS_PER_RUN)
    tail = _pass(TAIL, state, pacer, since=None, until=head_from, reads=READS_PER_RUN - head.read)
    return Labelling(head.read + tail.read, head.labelled + tail.labelled, head.caught_up and tail.caught_up)


def _head_from(state: Mapping[str, Any], now: float) -> float:
    """Where the head began: set by the first labelling run (a run racing it keeps the one written first)."""
    if HEAD_FROM in state:
        return float(state[HEAD_FROM])
    table.call_if(
        "update_item",
        Key={"id": {"S": pacing.PACING_KEY}},
        UpdateExpression=f"SET {HEAD_FROM} = if_not_exists({HEAD_FROM}, :from)",
        ExpressionAttributeValues=table.to_dynamodb({":from": Decimal(repr(now - LAG_SECONDS - HEADSTART_SECONDS))}),
    )
    stored = table.get_item(pacing.PACING_KEY) or {}
    return float(stored[HEAD_FROM])


def _pass(
    cursor: Cursor, state: Mapping[str, Any], pacer: clock.Pacer, *, since: float | None, until: float, reads: int
) -> Labelling:
    """One cursor's share of the run: pages of its range from where it stopped, each entry without a label labelled
    on its turn of the pacer; the cursor stops before the first entry left for want of time."""
    start = cursor.position(state)
    after, read, labelled, caught_up = start, 0, 0, False

    def label(entry: dict[str, Any]) -> bool | None:
        """Labelled (True), found labelled or no longer PENDING (False), or left for the next run (None)."""
        if journal.BACKLOG_LANE in entry:
            return False
        return journal.label(entry) if pacer.turn() else None

    while read < reads and not pacer.spent():
        entries, more = journal.pending_after(after, since, until, min(PAGE, reads - read))
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            outcomes = list(pool.map(label, entries))
        done = outcomes.index(None) if None in outcomes else len(outcomes)
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
        _move(cursor, start, after)
    return Labelling(read, labelled, caught_up)


def _move(cursor: Cursor, start: dict[str, Any] | None, after: dict[str, Any]) -> None:
    """The cursor on the pacing item, unless another run (a schedule delivered twice) moved it meanwhile."""
    values = {":at": Decimal(str(after["updatedAt"])), ":id": str(after["id"])}
    condition = f"attribute_not_exists({cursor.key})"
    if start is not None:
        condition = f"{cursor.key} = :was"
        values[":was"] = str(start["id"])
    table.call_if(
        "update_item",
        Key={"id": {"S": pacing.PACING_KEY}},
        UpdateExpression=f"SET {cursor.at} = :at, {cursor.key} = :id",
        ConditionExpression=condition,
        ExpressionAttributeValues=table.to_dynamodb(values),
    )
