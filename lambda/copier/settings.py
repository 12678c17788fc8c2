"""The function's settings, read once from the environment the CDK stack sets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from copier.errors import FunctionMisconfigured

DatastoreId = Annotated[str, Field(pattern=r"^[0-9a-z]{32}$")]
# The highest copyRatePerSecond the pipeline is built for (issue 16; infra/settings.py says the same).
MAX_COPY_RATE_PER_SECOND = 50.0
# SearchImageSets pages that are not copies': a backfill's (a page, then BetweenPages' second: at most one a second,
# infra/backfill_workflow.py) and the reconciliation sweep's (a page per 50 image sets of its window, every
# reconciliationIntervalMinutes: 1.6 a second on average at 40 new image sets a second). Copies get the rest of
# searchImageSetsRatePerSecond (copier.budgets), which must leave them some.
PAGING_SEARCHES_PER_SECOND = 3.0


class CopyPolicy(StrEnum):
    SNAPSHOT = "snapshot"
    MERGE_INTO_PRIMARY = "merge-into-primary"
    OFF = "off"  # console-only: events never start copies


class ForcePolicy(StrEnum):
    NEVER = "never"
    SAME_PATIENT = "same-patient"
    ALWAYS = "always"


class TableSettings(BaseModel):
    """What reading and writing the pipeline's table takes: the function's settings, or an operator's (ops.cli)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: str = Field(alias="IDEMPOTENCY_TABLE", min_length=1)
    # How long a copy request is remembered (copy record and idempotency): at least as long as events can be redriven.
    copy_record_retention_days: int = Field(alias="COPY_RECORD_RETENTION_DAYS", default=30, ge=1)
    # How long the copy journal keeps an entry after its last change (the audit trail of forced copies).
    journal_retention_days: int = Field(alias="JOURNAL_RETENTION_DAYS", default=731, ge=1)

    @property
    def copy_record_retention_seconds(self) -> int:
        return self.copy_record_retention_days * 86_400

    @property
    def journal_retention_seconds(self) -> int:
        return self.journal_retention_days * 86_400


class Settings(TableSettings):
    datastore_id: DatastoreId = Field(alias="DATASTORE_ID")
    copy_policy: CopyPolicy = Field(alias="COPY_POLICY", default=CopyPolicy.SNAPSHOT)
    force_policy: ForcePolicy = Field(alias="FORCE_POLICY", default=ForcePolicy.SAME_PATIENT)
    trigger_detail_types: tuple[str, ...] = Field(alias="TRIGGER_DETAIL_TYPES", default=("Image Set Created",))
    # The pace CopyImageSet calls are shaped to (the account's applied quota, less a margin: docs/configuration.md).
    copy_rate_per_second: float = Field(alias="COPY_RATE_PER_SECOND", default=0.24, gt=0, le=MAX_COPY_RATE_PER_SECOND)
    # Each HealthImaging read's budget (its applied quota, less a margin): the dispatcher plans no more copies a second
    # than each allows (copier.budgets). The previous release's environment has none: the default quotas' budgets.
    get_image_set_rate_per_second: float = Field(alias="GET_IMAGE_SET_RATE_PER_SECOND", default=24.0, gt=0)
    get_image_set_metadata_rate_per_second: float = Field(
        alias="GET_IMAGE_SET_METADATA_RATE_PER_SECOND", default=48.0, gt=0
    )
    search_image_sets_rate_per_second: float = Field(
        alias="SEARCH_IMAGE_SETS_RATE_PER_SECOND", default=24.0, gt=PAGING_SEARCHES_PER_SECOND
    )
    # The data store's concurrent-copy quota: the dispatcher keeps the copies in flight under it.
    concurrent_copy_quota: int = Field(alias="CONCURRENT_COPY_QUOTA", default=100, ge=1)
    # The share of each dispatcher run's slots the bulk lane keeps while it has work (infra/settings.py says why).
    bulk_minimum_share: float = Field(alias="BULK_MINIMUM_SHARE", default=0.1, ge=0.01, le=0.5)
    # A CopyImageSet throttled or refused for quota goes back for a new slot, this many times at most.
    throttle_retry_attempts: int = Field(alias="THROTTLE_RETRY_ATTEMPTS", default=10, ge=0)
    # The queue HealthImaging's copy outcome events arrive on (they wake the executions waiting for them).
    completion_queue_arn: str | None = Field(alias="COMPLETION_QUEUE_ARN", default=None)
    # Reconciliation (its own function): the sweep's interval and the state machine it starts.
    reconciliation_interval_minutes: int = Field(alias="RECONCILIATION_INTERVAL_MINUTES", default=15, ge=1)
    state_machine_arn: str | None = Field(alias="STATE_MACHINE_ARN", default=None)
    poll_initial_seconds: int = Field(alias="POLL_INITIAL_SECONDS", default=5, ge=1)
    poll_max_seconds: int = Field(alias="POLL_MAX_SECONDS", default=120, ge=1)
    # A copy waits for its completion event this long before looking anyway (events are best effort),
    # then twice as long each time, up to pollMaxSeconds, within maxWaitSeconds.
    completion_wait_seconds: int = Field(alias="COMPLETION_WAIT_SECONDS", default=60, ge=1)
    max_wait_seconds: int = Field(alias="MAX_WAIT_SECONDS", default=3_600, ge=1)

    @field_validator("trigger_detail_types", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Validated settings; a bad variable is named in the error."""
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as error:
        names = ", ".join(str(e["loc"][0]) for e in error.errors())
        raise FunctionMisconfigured(f"function settings are invalid: {names}") from None


# An operator's shell (ops.cli) works on the table it names, with the function's own journal and record code;
# a context variable, so that it never leaks into another thread (the local runner's executions).
_operator_table: ContextVar[TableSettings | None] = ContextVar("operator_table", default=None)


def table_settings() -> TableSettings:
    """The table's settings: the operator's while ops.cli works on a table (operating_on), else the function's."""
    return _operator_table.get() or load_settings()


@contextmanager
def operating_on(table_name: str) -> Iterator[TableSettings]:
    """ops.cli's access to a deployed stack's table. Retention takes the defaults: an operator writes PENDING
    journal entries (which never expire) and the claims of records settled by hand."""
    settings = TableSettings.model_validate({"IDEMPOTENCY_TABLE": table_name})
    token = _operator_table.set(settings)
    try:
        yield settings
    finally:
        _operator_table.reset(token)
