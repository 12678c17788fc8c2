"""Old versions of this function (action `prune_versions`, run daily by a schedule rule).

The state machines invoke the version published with their definition (infra/copy_function.py), so an
execution runs the code it started with to its end, whatever is deployed meanwhile; each deploy publishes a
new version and keeps the previous ones. A version can be used as long as an execution of a definition that
names it can run: copy executions time out 2 days after they start, backfill executions 1 day (a backfill
goes on as a new execution, which takes the definition deployed then), and Step Functions redrives a failed
execution, on its own definition, up to 14 days after it ended. So a version is deleted once the version
after it was published more than RETIRE_AFTER_DAYS ago (2 + 14 + 1 day of margin), except the newest
KEEP_NEWEST, whatever their age: what is kept is bounded by the deploys of the last 17 days plus ten, about
21 MB each (zipped) against Lambda's 75 GB of code storage per Region.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import pairwise
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from copier import clock

logger = Logger(child=True)

COPY_EXECUTION_DAYS = 2  # infra/settings.py EXECUTION_TIMEOUT_DAYS
REDRIVE_DAYS = 14  # Step Functions redrives an execution up to 14 days after it stopped
RETIRE_AFTER_DAYS = COPY_EXECUTION_DAYS + REDRIVE_DAYS + 1
KEEP_NEWEST = 10


@dataclass(frozen=True)
class PruneResult:
    kept: list[str]
    deleted: list[str]


@lru_cache(maxsize=1)
def _lambda() -> Any:
    return boto3.client("lambda")


def prune_versions(function_name: str | None = None) -> PruneResult:
    """Delete this function's versions that no execution can use any more (see above)."""
    name = function_name or os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    published: list[tuple[int, float]] = []  # (version, when it was published)
    for page in _lambda().get_paginator("list_versions_by_function").paginate(FunctionName=name):
        for version in page["Versions"]:
            if version["Version"] != "$LATEST":
                published.append((int(version["Version"]), _seconds(version["LastModified"])))
    published.sort()
    cutoff = clock.now() - RETIRE_AFTER_DAYS * 86_400
    retired = [number for (number, _), (_, successor_published) in pairwise(published) if successor_published < cutoff]
    newest = {number for number, _ in published[-KEEP_NEWEST:]}
    deletable = [number for number in retired if number not in newest]
    deleted = []
    for number in deletable:
        try:
            _lambda().delete_function(FunctionName=name, Qualifier=str(number))
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":  # deleted meanwhile
                raise
        deleted.append(str(number))
    kept = [str(number) for number, _ in published if str(number) not in deleted]
    logger.info("Old function versions pruned", extra={"deleted": deleted, "kept": len(kept)})
    return PruneResult(kept=kept, deleted=deleted)


def _seconds(last_modified: str) -> float:
    """Lambda's LastModified, e.g. 2026-01-01T00:00:00.000+0000."""
    return datetime.strptime(last_modified, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
