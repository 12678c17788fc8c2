"""`healthimaging-copy doctor`: what the pipeline's design assumes of the account, checked on the account.

Given a deployed pipeline (the names its stack's outputs give), each check reads the account and prints one line:
`ok NAME: ...`, `note NAME: ...` (worth knowing, nothing wrong) or `FINDING NAME: ...` (what is wrong and what to
do); any finding makes the exit status 1. A check the operator's credentials cannot read is a finding too
(`unchecked-...`): an unread check is not a clean bill. It runs with the operator's own credentials; the stack
holds no role for it (docs/operations.md lists the permissions).

- quotas: each HealthImaging quota a setting depends on, as Service Quotas publishes it for the account (service
  code medical-imaging), against the setting (QUOTA_CHECKS: an operation, its quota, the setting);
- Lambda: the function's reserved concurrency, or the account's unreserved pool, against the environments the
  scale model needs at copyRatePerSecond;
- rules: every EventBridge rule feeding the pipeline (those targeting the admission queue, the completion queue,
  the function) enabled; the import rule disabled only under copyPolicy off;
- dead letters: the admission and completion dead-letter queues empty;
- the alarm topic: a confirmed subscription;
- the last day, from the function's metrics: copies woken by their completion events against those found by their
  fallback look, throttled calls per copy, how late the backlog was, AwaitCopy's failures.

`--canary IMAGE_SET_ID` (ops/canary.py) makes one snapshot copy of a chosen image set and reports when its completion
events came and which image sets they named.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

SERVICE_CODE = "medical-imaging"  # HealthImaging in Service Quotas
ClientFactory = Callable[[str], Any]  # a boto3 client for a service name (tests give stubbed and moto ones)


class Verdict(Enum):
    OK = "ok"
    NOTE = "note"
    FINDING = "FINDING"


@dataclass(frozen=True)
class Line:
    verdict: Verdict
    name: str  # stable: what was checked (a finding's name says what is wrong)
    message: str

    def __str__(self) -> str:
        return f"{self.verdict.value} {self.name}: {self.message}"


def ok(name: str, message: str) -> Line:
    return Line(Verdict.OK, name, message)


def note(name: str, message: str) -> Line:
    return Line(Verdict.NOTE, name, message)


def finding(name: str, message: str) -> Line:
    return Line(Verdict.FINDING, name, message)


@dataclass(frozen=True)
class Deployment:
    """The deployed pipeline's names (its stack's outputs)."""

    function_name: str
    table_name: str
    state_machine_arn: str
    admission_queue_url: str
    dead_letter_queue_url: str
    completion_dead_letter_queue_url: str
    alarm_topic_arn: str


@dataclass(frozen=True)
class Function:
    """What the deployed function says of the pipeline: its ARN and its settings (the stack's, as deployed)."""

    arn: str
    settings: Any  # copier.settings.Settings
    service: str  # the metrics' dimension (Powertools' service name)
    namespace: str


# --- quotas ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuotaCheck:
    """A HealthImaging quota a setting depends on: the setting may not exceed what the account is given."""

    name: str
    operation: str  # what the quota limits
    setting: str  # the setting compared with it (docs/configuration.md)
    value: Callable[[Any], float]  # the setting's deployed value, from the function's settings
    quota_code: str | None = None  # Service Quotas' code, when known
    name_has: tuple[str, ...] = ()  # otherwise: words its QuotaName holds (case-insensitive)
    name_lacks: tuple[str, ...] = ()  # ... and words it does not (GetImageSet's is not GetImageSetMetadata's)
    per_second: bool = False  # a rate: the quota's Period converts it to a second's


# One row per quota. AWS publishes Service Quotas codes for none of the TPS quotas (the throttling limits page lists
# their figures; raises go through AWS Support): those rows find the quota by its name's words, if the account's
# Service Quotas lists it, and otherwise say the setting is unchecked.
QUOTA_CHECKS = (
    QuotaCheck(
        name="concurrent-copies",
        operation="CopyImageSet copies in flight per data store",
        setting="concurrentCopyQuota",
        value=lambda settings: float(settings.concurrent_copy_quota),
        quota_code="L-0D1B2633",
        name_has=("concurrent", "copyimageset"),
    ),
    QuotaCheck(
        name="copy-rate",
        operation="CopyImageSet requests a second (account and Region)",
        setting="copyRatePerSecond",
        value=lambda settings: float(settings.copy_rate_per_second),
        name_has=("rate", "copyimageset"),
        per_second=True,
    ),
    QuotaCheck(
        name="get-image-set-rate",
        operation="GetImageSet requests a second (account and Region)",
        setting="getImageSetRatePerSecond",
        value=lambda settings: float(settings.get_image_set_rate_per_second),
        name_has=("rate", "getimageset"),
        name_lacks=("metadata",),
        per_second=True,
    ),
    QuotaCheck(
        name="get-image-set-metadata-rate",
        operation="GetImageSetMetadata requests a second (account and Region)",
        setting="getImageSetMetadataRatePerSecond",
        value=lambda settings: float(settings.get_image_set_metadata_rate_per_second),
        name_has=("rate", "getimagesetmetadata"),
        per_second=True,
    ),
    QuotaCheck(
        name="search-image-sets-rate",
        operation="SearchImageSets requests a second (account and Region)",
        setting="searchImageSetsRatePerSecond",
        value=lambda settings: float(settings.search_image_sets_rate_per_second),
        name_has=("rate", "searchimagesets"),
        per_second=True,
    ),
)
PERIOD_SECONDS = {"MICROSECOND": 1e-6, "MILLISECOND": 1e-3, "SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86_400}


def check_quotas(clients: ClientFactory, function: Function) -> list[Line]:
    quotas = clients("service-quotas")
    datastore = function.settings.datastore_id
    applied = pages(quotas, "list_service_quotas", "Quotas", ServiceCode=SERVICE_CODE, QuotaAppliedAtLevel="ALL")
    defaults = pages(quotas, "list_aws_default_service_quotas", "Quotas", ServiceCode=SERVICE_CODE)
    lines = []
    for check in QUOTA_CHECKS:
        quota, source = _quota_for(check, applied, datastore), "applied"
        if quota is None:
            quota, source = _quota_for(check, defaults, datastore), "AWS default, no raise applied"
        setting = check.value(function.settings)
        if quota is None:
            lines.append(
                note(
                    check.name,
                    f"Service Quotas publishes no quota for {check.operation}: {check.setting} {setting:g} is"
                    " unchecked (AWS Support can say what the account is given)",
                )
            )
            continue
        value = _per_second(quota) if check.per_second else float(quota["Value"])
        described = f"{quota.get('QuotaName', check.operation)} ({quota.get('QuotaCode')}, {source}): {value:g}"
        if setting > value:
            lines.append(
                finding(
                    check.name,
                    f"{check.setting} {setting:g} is above {described}: the pipeline plans for more than the account"
                    f" gives (calls pushed back, copies late); set {check.setting} <= {value:g}, or ask for a raise",
                )
            )
        else:
            lines.append(ok(check.name, f"{check.setting} {setting:g} <= {described}"))
    return lines


def _quota_for(check: QuotaCheck, quotas: list[dict[str, Any]], datastore: str) -> dict[str, Any] | None:
    """The quota the check is about: by its code, else by its name's words; the data store's own value (a quota
    applied at the resource level) before the account's."""
    matching = [
        quota
        for quota in quotas
        if (quota.get("QuotaCode") == check.quota_code)
        or (check.name_has and _named(str(quota.get("QuotaName", "")).lower(), check))
    ]
    for quota in matching:
        if datastore in str(quota.get("QuotaContext", {}).get("ContextId", "")):
            return quota
    account = [quota for quota in matching if quota.get("QuotaContext", {}).get("ContextScope") != "RESOURCE"]
    return account[0] if account else None


def _named(quota_name: str, check: QuotaCheck) -> bool:
    return all(word in quota_name for word in check.name_has) and not any(w in quota_name for w in check.name_lacks)


def _per_second(quota: dict[str, Any]) -> float:
    period = quota.get("Period") or {"PeriodValue": 1, "PeriodUnit": "SECOND"}
    return float(quota["Value"]) / (float(period["PeriodValue"]) * PERIOD_SECONDS[period["PeriodUnit"]])


# --- Lambda ---------------------------------------------------------------------------------------------------------
# The function's concurrent environments the scale model needs, with its 1.25 x reserve (docs/figures.md, the most
# any burst of a row's quota took; docs/configuration.md, reservedConcurrency): (copies a second, environments).
LAMBDA_ENVIRONMENTS = ((0.25, 10), (1.0, 13), (10.0, 58), (40.0, 184))


def lambda_environments_needed(rate: float) -> int:
    """Linear between the scale model's rows (beyond the last, along its last segment)."""
    rates = [r for r, _ in LAMBDA_ENVIRONMENTS]
    at = min(max(bisect.bisect_left(rates, rate), 1), len(rates) - 1)
    (r0, e0), (r1, e1) = LAMBDA_ENVIRONMENTS[at - 1], LAMBDA_ENVIRONMENTS[at]
    return max(LAMBDA_ENVIRONMENTS[0][1], math.ceil(e0 + (rate - r0) * (e1 - e0) / (r1 - r0)))


def check_lambda(clients: ClientFactory, deployment: Deployment, function: Function) -> list[Line]:
    lambda_ = clients("lambda")
    rate = function.settings.copy_rate_per_second
    needed = lambda_environments_needed(rate)
    reserved = lambda_.get_function_concurrency(FunctionName=deployment.function_name).get(
        "ReservedConcurrentExecutions"
    )
    if reserved is not None:
        if reserved < needed:
            return [
                finding(
                    "lambda-reserved-concurrency",
                    f"reservedConcurrency {reserved} is under the {needed} environments copyRatePerSecond {rate:g}"
                    " needs (the scale model's peak x 1.25): invocations beyond it are throttled; raise it",
                )
            ]
        return [ok("lambda-reserved-concurrency", f"reservedConcurrency {reserved} >= {needed} needed at {rate:g}/s")]
    limits = lambda_.get_account_settings()["AccountLimit"]
    unreserved = int(limits["UnreservedConcurrentExecutions"])
    if unreserved < needed:
        return [
            finding(
                "lambda-account-concurrency",
                f"the account's unreserved concurrency {unreserved} (of {limits['ConcurrentExecutions']}) is under"
                f" the {needed} environments copyRatePerSecond {rate:g} needs, before any other function's: ask"
                " for a raise of Lambda's concurrent executions",
            )
        ]
    return [
        ok(
            "lambda-account-concurrency",
            f"the account's unreserved concurrency {unreserved} >= {needed} needed at {rate:g}/s"
            " (shared with the account's other functions)",
        )
    ]


# --- rules, dead letters, the alarm topic ---------------------------------------------------------------------------
def check_rules(clients: ClientFactory, deployment: Deployment, function: Function) -> list[Line]:
    """Every rule that targets the pipeline's queues or its function: the import rule (admission queue), the copy
    outcome rule (completion queue), the schedules (the function: dispatcher, reconciliation, version pruning)."""
    events, sqs = clients("events"), clients("sqs")
    admission_arn = sqs.get_queue_attributes(QueueUrl=deployment.admission_queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    copy_policy = str(function.settings.copy_policy)
    targets = (
        ("admission", admission_arn, "HealthImaging's import events into the backlog"),
        ("completion", function.settings.completion_queue_arn, "copy outcome events to the copies waiting for them"),
        ("schedules", function.arn, "the dispatcher's, reconciliation's and version pruning's schedules"),
    )
    lines = []
    for role, arn, what in targets:
        names = pages(events, "list_rule_names_by_target", "RuleNames", TargetArn=arn) if arn else []
        if not names:
            lines.append(finding(f"rules-{role}", f"no EventBridge rule targets {arn}: nothing sends {what}"))
            continue
        for name in names:
            state = str(events.describe_rule(Name=name)["State"])
            enabled = state.startswith("ENABLED")
            if role == "admission" and copy_policy == "off":
                verdict = note if not enabled else finding
                text = "disabled, as copyPolicy off wants" if not enabled else "enabled, although copyPolicy is off"
                lines.append(verdict(f"rules-{role}", f"{name} ({what}): {text}"))
            elif enabled:
                lines.append(ok(f"rules-{role}", f"{name} ({what}): {state}"))
            else:
                lines.append(
                    finding(f"rules-{role}", f"{name} ({what}) is {state}: enable it (aws events enable-rule)")
                )
    return lines


def check_dead_letters(clients: ClientFactory, deployment: Deployment) -> list[Line]:
    sqs = clients("sqs")
    lines = []
    for queue, url in (
        ("admission", deployment.dead_letter_queue_url),
        ("completion", deployment.completion_dead_letter_queue_url),
    ):
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        held = sum(
            int(attributes.get(name, 0))
            for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        )
        if held:
            lines.append(
                finding(
                    f"dead-letters-{queue}",
                    f"about {held} message(s) in the {queue} dead-letter queue: find why (the function's log), fix"
                    f" it, then healthimaging-copy redrive --queue {queue}",
                )
            )
        else:
            lines.append(ok(f"dead-letters-{queue}", f"the {queue} dead-letter queue is empty"))
    return lines


def check_alarm_topic(clients: ClientFactory, deployment: Deployment) -> list[Line]:
    subscriptions = pages(
        clients("sns"), "list_subscriptions_by_topic", "Subscriptions", TopicArn=deployment.alarm_topic_arn
    )
    confirmed = [s for s in subscriptions if str(s.get("SubscriptionArn", "")).startswith("arn:")]
    if not confirmed:
        pending = len(subscriptions) - len(confirmed)
        return [
            finding(
                "alarm-topic",
                f"{deployment.alarm_topic_arn} has no confirmed subscription ({pending} pending): no alarm reaches"
                " anyone; subscribe (aws sns subscribe) and confirm",
            )
        ]
    protocols = ", ".join(sorted({str(s.get("Protocol")) for s in confirmed}))
    return [ok("alarm-topic", f"{len(confirmed)} confirmed subscription(s) ({protocols})")]


# --- the last day, from the function's metrics ----------------------------------------------------------------------
# The same judgements as the stack's alarms (infra/monitoring.py; tests/test_doctor.py keeps them equal).
FALLBACK_SHARE_ALARM_PERCENT = 50
FALLBACK_SHARE_MIN_COPIES = 10
BACKLOG_LATE_ALARM_SECONDS = 3600
# Issue 16's target: at most this many calls pushed back (throttled, over the concurrent-copy quota) a copy.
PUSHED_BACK_PER_COPY = 0.05
DAY_METRICS = {
    "woken": ("CopiesWoken", "Sum"),
    "missed": ("CompletionEventsMissed", "Sum"),
    "completed": ("CopiesCompleted", "Sum"),
    "started": ("CopiesStarted", "Sum"),
    "throttled": ("CopyThrottles", "Sum"),
    "overQuota": ("CopyQuotaExceeded", "Sum"),
    "awaitFailures": ("AwaitCopyFailures", "Sum"),
    "late": ("LiveBacklogLateSeconds", "Maximum"),
    "bulkLate": ("BulkBacklogLateSeconds", "Maximum"),
}


def check_last_day(clients: ClientFactory, function: Function, now: datetime) -> list[Line]:
    day = _last_day(clients("cloudwatch"), function, now)
    lines = []
    completed, woken, missed = day["completed"], day["woken"], day["missed"]
    if completed == 0:
        lines.append(
            note("events", "no copy completed in the last day: whether copy events arrive is unknown (--canary)")
        )
    else:
        share = 100 * missed / completed
        counted = (
            f"{completed:g} copies completed: {woken:g} woken by their events, {missed:g} found by their fallback look"
        )
        if completed >= FALLBACK_SHARE_MIN_COPIES and share >= FALLBACK_SHARE_ALARM_PERCENT:
            lines.append(
                finding(
                    "events-not-arriving",
                    f"{counted} ({share:.0f}%): copy outcome events are not reaching the copies (check the completion"
                    " rule above; --canary shows which image sets this account's events name)",
                )
            )
        else:
            lines.append(ok("events", counted))
    started, pushed_back = day["started"], day["throttled"] + day["overQuota"]
    if started:
        per_copy = pushed_back / started
        text = (
            f"{pushed_back:g} calls pushed back (throttled, over the concurrent-copy quota) for {started:g} copies"
            f" started: {per_copy:.3f} a copy"
        )
        if per_copy > PUSHED_BACK_PER_COPY:
            lines.append(
                finding(
                    "pushed-back",
                    f"{text}: another client takes the account's quota, or copyRatePerSecond / concurrentCopyQuota"
                    " exceed what the account gives (the quota lines above)",
                )
            )
        else:
            lines.append(ok("pushed-back", text))
    late, bulk_late = day["late"], day["bulkLate"]
    if late >= BACKLOG_LATE_ALARM_SECONDS:
        lines.append(
            finding(
                "backlog-late",
                f"new imports (the live lane) were {late / 60:.0f} min late at worst (the LiveBacklogLate alarm's"
                " runbook)",
            )
        )
    else:
        lines.append(ok("backlog-late", f"new imports (the live lane) were {late:.0f} s late at worst"))
    # Bulk work late against its share informs, as its alarm does: it is no reason to page anyone.
    if bulk_late >= BACKLOG_LATE_ALARM_SECONDS:
        lines.append(
            note(
                "bulk-late",
                f"bulk work (backfills) was {bulk_late / 60:.0f} min late against its share at worst (the"
                " BulkBacklogLate alarm's runbook)",
            )
        )
    if day["awaitFailures"]:
        lines.append(
            finding(
                "await-copy-failing",
                f"AwaitCopy's write failed {day['awaitFailures']:g} time(s) (the AwaitCopyFailing alarm's runbook)",
            )
        )
    else:
        lines.append(ok("await-copy-failing", "AwaitCopy's writes did not fail"))
    return lines


def _last_day(cloudwatch: Any, function: Function, now: datetime) -> dict[str, float]:
    queries = [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": function.namespace,
                    "MetricName": metric,
                    "Dimensions": [{"Name": "service", "Value": function.service}],
                },
                "Period": 86_400,
                "Stat": statistic,
            },
        }
        for query_id, (metric, statistic) in DAY_METRICS.items()
    ]
    values: dict[str, list[float]] = {query_id: [] for query_id in DAY_METRICS}
    for result in pages(
        cloudwatch,
        "get_metric_data",
        "MetricDataResults",
        MetricDataQueries=queries,
        StartTime=now - timedelta(days=1),
        EndTime=now,
    ):
        values[result["Id"]].extend(result.get("Values", []))  # one query's values may come on several pages
    return {
        query_id: (max(found, default=0.0) if DAY_METRICS[query_id][1] == "Maximum" else float(sum(found)))
        for query_id, found in values.items()
    }


# --- the whole examination ------------------------------------------------------------------------------------------
def read_function(clients: ClientFactory, deployment: Deployment, settings_model: Any) -> Function:
    configuration = clients("lambda").get_function_configuration(FunctionName=deployment.function_name)
    environment = configuration.get("Environment", {}).get("Variables", {})
    return Function(
        arn=str(configuration["FunctionArn"]),
        settings=settings_model.model_validate({**environment, "IDEMPOTENCY_TABLE": deployment.table_name}),
        service=str(environment.get("POWERTOOLS_SERVICE_NAME", "")),
        namespace=str(environment.get("POWERTOOLS_METRICS_NAMESPACE", "")),
    )


def examine(
    clients: ClientFactory, deployment: Deployment, function: Function, *, now: datetime | None = None
) -> Iterator[Line]:
    """Every check, in order; one that cannot read what it checks is a finding of its own."""
    when = now or datetime.now(tz=UTC)
    checks: tuple[tuple[str, Callable[[], Iterable[Line]]], ...] = (
        ("quotas", lambda: check_quotas(clients, function)),
        ("lambda", lambda: check_lambda(clients, deployment, function)),
        ("rules", lambda: check_rules(clients, deployment, function)),
        ("dead-letters", lambda: check_dead_letters(clients, deployment)),
        ("alarm-topic", lambda: check_alarm_topic(clients, deployment)),
        ("last-day", lambda: check_last_day(clients, function, when)),
    )
    for name, check in checks:
        try:
            yield from check()
        except (ClientError, BotoCoreError) as error:
            yield unchecked(name, error)


def unchecked(check: str, error: Exception) -> Line:
    """A check whose calls failed: no clean bill for what it could not read."""
    return finding(f"unchecked-{check}", f"{what_failed(error)} (docs/operations.md: doctor's permissions)")


def what_failed(error: Exception) -> str:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        return f"{code} on {error.operation_name}"
    return type(error).__name__


def pages(client: Any, operation: str, key: str, *, token_key: str = "NextToken", **params: Any) -> list[Any]:
    """Every page's `key` items (Step Functions spells its token nextToken)."""
    found: list[Any] = []
    token: str | None = None
    while True:
        page = getattr(client, operation)(**params, **({token_key: token} if token else {}))
        found.extend(page.get(key, []))
        token = page.get(token_key)
        if not token:
            return found
