"""Stack settings from CDK context (cdk.json or `-c key=value`), validated at synth.

One stack: top-level keys. Several: a `stacks` object, name -> keys that override the
top-level ones (e.g. one stack per data store or stage). Values given with `-c` arrive
as strings; numbers and lists are parsed from them.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from copier.settings import PAGING_SEARCHES_PER_SECOND

# Image set events only: a copy is about one image set. ("Import Job Completed" names a job,
# not its image sets; each of those has its own "Image Set Created" event.)
KNOWN_DETAIL_TYPES = (
    "Image Set Created",
    "Image Set Updated",
    "Image Set Copied",
    "Image Set Copy Failed",
)
DEFAULT_STACK_NAME = "HealthImagingCopy"
# SQS keeps a dead letter at most 14 days; EventBridge retries a target for 24 h before that; a copy's
# record is written up to an execution's lifetime after the execution started.
DEAD_LETTER_RETENTION_DAYS = 14
EXECUTION_TIMEOUT_DAYS = 2
REDRIVE_WINDOW_DAYS = DEAD_LETTER_RETENTION_DAYS + 1 + EXECUTION_TIMEOUT_DAYS


class SettingsError(ValueError):
    """A context setting is missing or invalid; the message names it."""


class RetrySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_seconds: int = Field(ge=1, le=3600)
    max_attempts: int = Field(ge=0, le=99)
    backoff_rate: float = Field(ge=1, le=10)
    max_delay_seconds: int = Field(ge=1, le=31_622_400)


class StackSettings(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    datastore_id: str = Field(pattern=r"^[0-9a-z]{32}$")
    copy_policy: Literal["snapshot", "merge-into-primary", "off"] = "snapshot"
    force_policy: Literal["never", "same-patient", "always"] = "same-patient"
    trigger_detail_types: tuple[str, ...] = ("Image Set Created",)
    # The applied CopyImageSet quota less a margin (docs/configuration.md, "Choosing copyRatePerSecond"); 50 is what the
    # dispatcher, the journal's indexes and the pacing item are sized for (benchmarks/scale/).
    copy_rate_per_second: float = Field(default=0.24, gt=0, le=50)
    # Each HealthImaging read the copies make has its own quota (AWS HealthImaging throttling limits: GetImageSet 25,
    # GetImageSetMetadata 50, SearchImageSets 25 TPS by default, each adjustable on its own): its budget is the applied
    # quota less the margin copyRatePerSecond keeps (0.96). The dispatcher plans no more copies a second than each
    # allows by copyPolicy (lambda/copier/budgets.py); SearchImageSets' also serves reconciliation and backfill pages.
    get_image_set_rate_per_second: float = Field(default=24.0, gt=0, le=10_000)
    get_image_set_metadata_rate_per_second: float = Field(default=48.0, gt=0, le=10_000)
    search_image_sets_rate_per_second: float = Field(default=24.0, gt=PAGING_SEARCHES_PER_SECOND, le=10_000)
    # HealthImaging's "Maximum concurrent CopyImageSet requests per data store" (AWS General Reference, HealthImaging
    # endpoints and quotas: 100 in each Region, adjustable, Service Quotas code L-0D1B2633).
    concurrent_copy_quota: int = Field(default=100, ge=1, le=10_000)
    # The backlog's bulk lane (backfills, large retries) gets what new imports (the live lane) leave of the quota, and
    # at least this share of each dispatcher run's slots while it has work: new imports keep 90% however large a
    # backfill (a burst of them waits at most 1.11x as long), and no flood of them stops a backfill. More than a
    # half would put bulk work ahead of new imports (docs/configuration.md).
    bulk_minimum_share: float = Field(default=0.1, ge=0.01, le=0.5)
    conflict_retry_attempts: int = Field(default=8, ge=0, le=99)
    conflict_retry_interval_seconds: int = Field(default=15, ge=1, le=3600)
    conflict_retry_max_delay_seconds: int = Field(default=300, ge=1, le=86_400)
    throttle_retry_attempts: int = Field(default=10, ge=0, le=99)
    poll_initial_seconds: int = Field(default=5, ge=1, le=3600)
    poll_max_seconds: int = Field(default=120, ge=1, le=3600)
    # How long a copy waits for HealthImaging's completion event (best effort) before looking anyway.
    completion_wait_seconds: int = Field(default=60, ge=1, le=3600)
    max_wait_seconds: int = Field(default=3600, ge=60, le=86_400)  # well inside the execution's timeout
    # Copy records (and so idempotency) must outlive every event that can still be redriven,
    # or a redriven event about a copy would start it, or a copy of its output, again.
    copy_record_retention_days: int = Field(default=30, ge=REDRIVE_WINDOW_DAYS, le=3653)
    # The copy journal: the audit trail of every decision and forced copy.
    journal_retention_days: int = Field(default=731, ge=REDRIVE_WINDOW_DAYS, le=3653)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    workflow_log_level: Literal["ALL", "ERROR", "FATAL", "OFF"] = "ALL"
    alarm_topic_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$"
    )
    log_retention_days: Literal[30, 90, 180, 365, 731, 1827, 3653] = 365
    # None: the function shares the account's unreserved pool, so the stack deploys on accounts with
    # a low concurrency quota (Lambda keeps 100 unreserved). A number caps the function (docs/configuration.md).
    reserved_concurrency: int | None = Field(default=None, ge=1, le=10_000)
    # Reconciliation sweeps for image sets whose event never arrived; 0 turns it off.
    reconciliation_interval_minutes: int = Field(default=15, ge=0, le=1440)
    # The data store's customer managed key, if it has one: the function may use it (HealthImaging
    # data-encryption guide: kms:Decrypt, kms:GenerateDataKey).
    datastore_kms_key_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f-]{36})$"
    )
    # Where the stack deploys; absent: the CLI's current account and Region (env-agnostic without one).
    account: str | None = Field(default=None, pattern=r"^[0-9]{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")

    @field_validator("trigger_detail_types", mode="before")
    @classmethod
    def _detail_types(cls, value: object) -> object:
        if isinstance(value, str):
            value = json.loads(value) if value.startswith("[") else [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("must be a non-empty list of detail-types")
        unknown = [v for v in value if v not in KNOWN_DETAIL_TYPES]
        if unknown:
            raise ValueError(f"unknown detail-type(s) {unknown}; choose from {list(KNOWN_DETAIL_TYPES)}")
        if "Image Set Copied" in value or "Image Set Copy Failed" in value:
            raise ValueError("copy outcome events would make the pipeline copy its own output (copy storm)")
        return tuple(value)

    @model_validator(mode="after")
    def _consistent(self) -> StackSettings:
        if self.poll_max_seconds < self.poll_initial_seconds:
            raise ValueError("pollMaxSeconds must be >= pollInitialSeconds")
        # Alarm actions and a data store's key must be in the Region of the alarms and the data store.
        for key, arn in (("alarmTopicArn", self.alarm_topic_arn), ("datastoreKmsKeyArn", self.datastore_kms_key_arn)):
            if self.region and arn and arn.split(":")[3] != self.region:
                raise ValueError(f"{key} is in {arn.split(':')[3]}, the stack deploys to region {self.region}")
        return self

    def conflict_retry(self) -> RetrySettings:
        return RetrySettings(
            interval_seconds=self.conflict_retry_interval_seconds,
            max_attempts=self.conflict_retry_attempts,
            backoff_rate=2.0,
            max_delay_seconds=self.conflict_retry_max_delay_seconds,
        )

    def construct_props(self) -> dict[str, Any]:
        """The HealthImagingCopy construct's keyword arguments for these settings."""
        return {name: getattr(self, name) for name in CONSTRUCT_PROPS}

    def function_environment(self) -> dict[str, str]:
        return {
            "DATASTORE_ID": self.datastore_id,
            "COPY_POLICY": self.copy_policy,
            "FORCE_POLICY": self.force_policy,
            "TRIGGER_DETAIL_TYPES": ",".join(self.trigger_detail_types),
            "COPY_RATE_PER_SECOND": str(self.copy_rate_per_second),
            "GET_IMAGE_SET_RATE_PER_SECOND": str(self.get_image_set_rate_per_second),
            "GET_IMAGE_SET_METADATA_RATE_PER_SECOND": str(self.get_image_set_metadata_rate_per_second),
            "SEARCH_IMAGE_SETS_RATE_PER_SECOND": str(self.search_image_sets_rate_per_second),
            "CONCURRENT_COPY_QUOTA": str(self.concurrent_copy_quota),
            "BULK_MINIMUM_SHARE": str(self.bulk_minimum_share),
            "THROTTLE_RETRY_ATTEMPTS": str(self.throttle_retry_attempts),
            "POLL_INITIAL_SECONDS": str(self.poll_initial_seconds),
            "POLL_MAX_SECONDS": str(self.poll_max_seconds),
            "COMPLETION_WAIT_SECONDS": str(self.completion_wait_seconds),
            "MAX_WAIT_SECONDS": str(self.max_wait_seconds),
            "COPY_RECORD_RETENTION_DAYS": str(self.copy_record_retention_days),
            "JOURNAL_RETENTION_DAYS": str(self.journal_retention_days),
            "RECONCILIATION_INTERVAL_MINUTES": str(max(self.reconciliation_interval_minutes, 1)),
            "POWERTOOLS_LOG_LEVEL": self.log_level,
        }


SETTING_NAMES = tuple(field.alias or name for name, field in StackSettings.model_fields.items())
# Settings of earlier releases that no longer apply, and why: a cdk.json that still has them keeps working
# (they are dropped, and infra/app.py names each in a synth warning; docs/operations.md, "Upgrading").
OBSOLETE_SETTINGS = {
    "throttleRetryIntervalSeconds": "a call throttled or refused over the concurrent-copy quota takes a new "
    "paced slot (throttleRetryAttempts bounds how many), it is not retried on a timer",
    "throttleRetryMaxDelaySeconds": "a call throttled or refused over the concurrent-copy quota takes a new "
    "paced slot (throttleRetryAttempts bounds how many), it is not retried on a timer",
}
# Context keys the CDK CLI itself reads or writes that look like no other of its keys (cdk.json, cdk.context.json).
CDK_OWN_KEYS = ("cli-telemetry", "acknowledged-issue-numbers")
# Where a stack deploys is the stack's business: the HealthImagingCopy construct takes every other setting.
STACK_ONLY = ("account", "region")
CONSTRUCT_PROPS = tuple(name for name in StackSettings.model_fields if name not in STACK_ONLY)
_PYTHON_NAMES = {field.alias: name for name, field in StackSettings.model_fields.items() if field.alias}


def validate(values: dict[str, Any], *, where: str, python_names: bool = False) -> StackSettings:
    """The settings, or SettingsError naming every bad one, as context keys (camelCase) or, for the
    construct's props, as the Python keywords (snake_case)."""
    try:
        return StackSettings.model_validate(values)
    except ValidationError as error:
        problems = []
        for found in error.errors():
            where_in = ".".join(str(part) for part in found["loc"]) or "settings"
            problem = f"{where_in}: {found['msg'].removeprefix('Value error, ')}"
            if python_names:
                problem = re.sub(r"\b[a-z]+[A-Z]\w*\b", lambda m: _PYTHON_NAMES.get(m[0], m[0]), problem)
            problems.append(problem)
        raise SettingsError(f"invalid settings for {where}: {'; '.join(problems)}") from None


def stack_settings_from_context(context: dict[str, Any]) -> dict[str, StackSettings]:
    """Stack name -> settings, from the whole context (CDK's own keys left alone). Raises SettingsError naming
    every unknown key (and the setting it is likely meant to be) or bad value; drops the obsolete ones."""
    stacks = _stacks(context)
    if stacks is not None and not isinstance(stacks, dict):
        raise SettingsError("stacks: must be an object of stack name -> settings")
    for name, overrides in (stacks or {}).items():
        if not isinstance(overrides, dict):
            raise SettingsError(f"stacks.{name}: must be an object of settings")
    unknown = _unknown_keys(context, where="", allowed=(*SETTING_NAMES, *OBSOLETE_SETTINGS, "stacks"))
    for name, overrides in (stacks or {}).items():
        unknown += _unknown_keys(overrides, where=f"stacks.{name}.", allowed=(*SETTING_NAMES, *OBSOLETE_SETTINGS))
    if unknown:
        raise SettingsError(f"unknown setting(s): {'; '.join(unknown)} (every setting: docs/configuration.md)")
    common = {k: v for k, v in context.items() if k in SETTING_NAMES}  # '-c' strings: pydantic parses numbers
    result = {}
    for name, overrides in (stacks or {DEFAULT_STACK_NAME: {}}).items():
        current = {k: v for k, v in overrides.items() if k not in OBSOLETE_SETTINGS}
        result[name] = validate({**common, **current}, where=f"stack {name}")
    return result


def _unknown_keys(values: dict[str, Any], *, where: str, allowed: tuple[str, ...]) -> list[str]:
    """Each key that is neither a setting nor CDK's own, with the setting it is likely a typo of."""
    by_lower = {name.lower(): name for name in allowed}
    found = []
    for key in values:
        if key in allowed or _cdk_own(key):
            continue
        nearest = difflib.get_close_matches(key.lower(), by_lower, n=1, cutoff=0.75)
        found.append(f"{where}{key}" + (f" (did you mean {by_lower[nearest[0]]}?)" if nearest else ""))
    return found


def obsolete_settings_in(context: dict[str, Any], stack_name: str) -> list[str]:
    """The obsolete settings a stack was given (top-level or its own), which stack_settings_from_context
    dropped."""
    stacks = _stacks(context)
    own = stacks.get(stack_name) if isinstance(stacks, dict) else None
    given = {*context, *(own if isinstance(own, dict) else ())}
    return [key for key in OBSOLETE_SETTINGS if key in given]


def _stacks(context: dict[str, Any]) -> object:
    stacks = context.get("stacks")
    return json.loads(stacks) if isinstance(stacks, str) else stacks


def _cdk_own(key: str) -> bool:
    """CDK's context: the CLI's and the toolkit's keys (`aws:cdk:...`, `aws-cdk:...`), feature flags
    (`@aws-cdk/...`), cached lookups (`availability-zones:account=...`), and the CLI's plain ones."""
    return ":" in key or key.startswith("@") or key in CDK_OWN_KEYS
