"""The events HealthImaging sends EventBridge when a copy lands ("Image Set Copied", "Image Set Copy Failed").
The emulator hands each to its `event_listeners` as it settles the copy. AWS defines an event's image set only as
"the image set associated with the status change", and a copy changes its source's status too: `CopyEvents` says
which image set a copy's events name (the emulator's `copy_events`: one event each for "both", none for "none")."""

from __future__ import annotations

import datetime
import secrets
from typing import Any, Literal

CopyEvents = Literal["destination", "source", "both", "none"]


def copy_outcome_event(
    datastore_id: str,
    image_set_id: str,
    workflow_status: str,
    at: float,
    *,
    account: str,
    region: str,
    version_id: int = 1,
    is_primary: bool = False,
) -> dict[str, Any]:
    """The EventBridge event HealthImaging sends when a copy into `image_set_id` lands, as the developer guide's
    example shows it (event-notifications: "Image Set Copied", "Image Set Copy Failed"); the schema registry's
    pattern (aws.medical-imaging@ImageSetCopied) names no version, so the pipeline does not rely on one."""
    detail_type = "Image Set Copied" if workflow_status == "COPIED" else "Image Set Copy Failed"
    when = datetime.datetime.fromtimestamp(int(at), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": secrets.token_hex(16),
        "detail-type": detail_type,
        "source": "aws.medical-imaging",
        "account": account,
        "time": when,
        "region": region,
        "resources": [f"arn:aws:medical-imaging:{region}:{account}:datastore/{datastore_id}/imageset/{image_set_id}"],
        "detail": {
            "imagingVersion": "1.0",
            "datastoreId": datastore_id,
            "imageSetId": image_set_id,
            "imageSetVersion": str(version_id),
            "isPrimary": is_primary,
            "imageSetState": "ACTIVE",
            "imageSetWorkflowStatus": workflow_status,
        },
    }
