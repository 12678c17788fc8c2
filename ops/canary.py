"""`healthimaging-copy doctor --canary IMAGE_SET_ID`: one snapshot copy of a chosen image set, through the state
machine with the console's input (a new image set, journaled as any console copy), and what its completion events
did: when they came and which image sets they named. The wake items of the copy's source and destination record
each event's time (copier.wake); AWS's event reference does not say which image set a copy's events name, and the
pipeline is woken either way, so this is how an operator learns which this account's events name, or that none
come. Also how the copy was woken, and the produced version's updatedAt (the landing the dispatcher measures).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .doctor import ClientFactory, Deployment, Function, Line, finding, note, ok, pages, what_failed


@dataclass(frozen=True)
class Waiting:
    """How the canary waits: the wall clock, or a test's virtual one."""

    now: Callable[[], float]
    sleep: Callable[[float], None]
    poll_seconds: float = 5.0
    copy_timeout_seconds: float = 3600.0  # maxWaitSeconds' default: the copy fails by then
    events_seconds: float = 120.0  # after the copy's end: an event later than that changes no copy's wait


ROLES = ("destination", "source")


def canary(
    clients: ClientFactory,
    deployment: Deployment,
    function: Function,
    image_set_id: str,
    *,
    start_copy: Callable[[dict[str, Any]], str],
    waiting: Waiting,
) -> list[Line]:
    """One snapshot copy of `image_set_id` (a new image set, through the state machine, journaled as any console
    copy): how it ended, when its completion events came and which image sets they named."""
    sfn = clients("stepfunctions")
    arn = start_copy({"datastoreId": function.settings.datastore_id, "sourceImageSetId": image_set_id})
    deadline = waiting.now() + waiting.copy_timeout_seconds
    described = sfn.describe_execution(executionArn=arn)
    while described["status"] == "RUNNING" and waiting.now() < deadline:
        waiting.sleep(waiting.poll_seconds)
        described = sfn.describe_execution(executionArn=arn)
    name = described["name"]
    if described["status"] == "RUNNING":
        return [finding("canary-copy", f"execution {name} still running after {waiting.copy_timeout_seconds:g} s")]
    if described["status"] != "SUCCEEDED":
        return [
            finding(
                "canary-copy",
                f"execution {name} {described['status']}: {described.get('error')} (see its history; the canary"
                " needs an image set that can be copied)",
            )
        ]
    output = json.loads(described["output"])
    exits = _state_exits(sfn, arn)
    started = json.loads(exits["StartCopy"][-1])["copy"] if exits.get("StartCopy") else {}
    called = float(started.get("startedAt") or described["startDate"].timestamp())
    destination = str(output["destinationImageSetId"])
    lines = [
        ok(
            "canary-copy",
            f"{image_set_id} copied into {destination} version {output['destinationVersionId']} ({name}), called at"
            f" {_iso(called)}, {output['status']} after {output['waitedSeconds']} s",
        )
    ]
    lines.append(_woken_by(exits.get("AwaitCopy", [])))
    images = {"destination": destination, "source": image_set_id}
    seen = _events_seen(clients("dynamodb"), deployment.table_name, images, called, waiting)
    for role in ROLES:
        if role in seen:
            event_at, noticed = seen[role]
            lines.append(
                ok(
                    f"canary-event-{role}",
                    f"an event named the {role} image set {images[role]}: its time {_iso(event_at)}"
                    f" ({event_at - called:.0f} s after the call), recorded by {_iso(noticed)}",
                )
            )
        else:
            lines.append(
                note(
                    f"canary-event-{role}",
                    f"no event named the {role} image set {images[role]}"
                    f" (watched {waiting.events_seconds:g} s after the copy)",
                )
            )
    lines.append(_landed(clients, function, output, called))
    named = [role for role in ROLES if role in seen]
    if not named:
        lines.append(
            finding(
                "canary-events",
                "no copy outcome event named either image set: every copy waits its fallback (completionWaitSeconds)"
                " and the events-not-arriving alarm will fire; check the completion rule and its dead-letter queue",
            )
        )
    else:
        lines.append(ok("canary-events", f"this account's copy outcome events name the {' and the '.join(named)}"))
    return lines


def _state_exits(sfn: Any, arn: str) -> dict[str, list[str]]:
    """Each state's outputs as it exited, in order."""
    exits: dict[str, list[str]] = {}
    for event in pages(
        sfn, "get_execution_history", "events", token_key="nextToken", executionArn=arn, maxResults=1000
    ):
        details = event.get("stateExitedEventDetails")
        if details:
            exits.setdefault(details["name"], []).append(details.get("output", "{}"))
    return exits


def _woken_by(await_exits: list[str]) -> Line:
    if not await_exits:
        return note("canary-woken", "the copy did not wait in AwaitCopy")
    wake = json.loads(await_exits[-1]).get("wake", {})
    if wake.get("wokenBy") == "event":
        return ok("canary-woken", "woken by its completion event")
    error = str(wake.get("Error", ""))
    if error == "States.Timeout":
        return note("canary-woken", "found by its fallback look: no event woke it within its wait")
    if error.endswith(("TransactionCanceledException", "ConditionalCheckFailedException")):
        return ok("canary-woken", "its event came before it waited (looked at at once)")
    return finding("canary-woken", f"AwaitCopy failed: {error} (the AwaitCopyFailing alarm's runbook)")


def _events_seen(
    dynamodb: Any, table: str, images: dict[str, str], called: float, waiting: Waiting
) -> dict[str, tuple[float, float]]:
    """For each image set an event named since the call: the event's time, and when the canary first saw it."""
    seen: dict[str, tuple[float, float]] = {}
    until = waiting.now() + waiting.events_seconds
    while True:
        for role, image_set_id in images.items():
            if role in seen:
                continue
            item = dynamodb.get_item(TableName=table, Key={"id": {"S": f"wake#{image_set_id}"}}, ConsistentRead=True)
            event_at = item.get("Item", {}).get("eventAt", {}).get("N")
            if event_at is not None and float(event_at) >= math.floor(called):
                seen[role] = (float(event_at), waiting.now())
        if len(seen) == len(images) or waiting.now() >= until:
            return seen
        waiting.sleep(waiting.poll_seconds)


def _landed(clients: ClientFactory, function: Function, output: dict[str, Any], called: float) -> Line:
    """The produced version's own updatedAt: when the dispatcher believes the copy landed when no event says."""
    try:
        produced = clients("medical-imaging").get_image_set(
            datastoreId=function.settings.datastore_id,
            imageSetId=output["destinationImageSetId"],
            versionId=output["destinationVersionId"],
        )
    except (ClientError, BotoCoreError) as error:
        return note("canary-landed", f"the produced version not read ({what_failed(error)})")
    updated = produced.get("updatedAt")
    if not isinstance(updated, datetime):
        return note("canary-landed", "the produced version's record has no updatedAt")
    return ok(
        "canary-landed",
        f"the produced version's updatedAt {updated.isoformat(timespec='seconds')}"
        f" ({updated.timestamp() - called:.0f} s after the call): the landing the dispatcher measures copies by",
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")
