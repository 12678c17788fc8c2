"""`healthimaging-copy doctor` (ops/doctor.py) against an account: moto for what it serves (SQS, SNS, EventBridge,
CloudWatch, DynamoDB, Step Functions), botocore Stubbers on the real service models for what it does not (Service
Quotas, Lambda's account settings). A clean account gives a clean bill; each way the account can disagree with the
design gives its own named finding, and nothing else does."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws
from test_docs import RESERVE, scale_table
from workflow import DS, local_pipeline

from infra import monitoring
from offline import seed
from offline.clock import VirtualClock
from offline.emulator import CopyEvents, HealthImagingEmulator, copy_outcome_event
from offline.runner import REGION as RUNNER_REGION
from offline.runner import TABLE as RUNNER_TABLE
from offline.wire import attach
from ops import canary, cli, doctor
from ops.cli import function_module, start
from ops.doctor import Deployment, Verdict

REGION, ACCOUNT = "us-east-1", "123456789012"
DATASTORE = "0123456789abcdef0123456789abcdef"
SERVICE, NAMESPACE = "healthimaging-copy", "HealthImagingCopy"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FUNCTION_NAME = "copy-image-set"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_NAME}"
CONCURRENT_COPIES = "L-0D1B2633"
MAKE_CLIENT = boto3.client  # the real one: the command's test puts the account's factory in its place


@dataclass
class Account:
    """The deployed pipeline's resources in moto, and what the stubbed services will answer."""

    deployment: Deployment
    completion_queue_arn: str
    environment: dict[str, str]
    quotas: list[dict[str, Any]] = field(default_factory=list)  # applied (ListServiceQuotas)
    reserved_concurrency: int | None = None
    unreserved: int = 900
    refused: set[str] = field(default_factory=set)  # services that answer AccessDenied

    def clients(self, *, configuration: bool = False) -> Callable[[str], Any]:
        """The factory doctor takes: stubbed Service Quotas and Lambda, loaded with this account's answers (and,
        `configuration`, the function's configuration first: the command reads the settings from it)."""
        stubbers: list[Stubber] = []

        def client(service: str) -> Any:
            made = MAKE_CLIENT(service, region_name=REGION)
            if service == "service-quotas":
                stubber = Stubber(made)
                if "service-quotas" in self.refused:
                    stubber.add_client_error("list_service_quotas", "AccessDeniedException", http_status_code=400)
                else:
                    stubber.add_response(
                        "list_service_quotas",
                        {"Quotas": self.quotas},
                        {"ServiceCode": "medical-imaging", "QuotaAppliedAtLevel": "ALL"},
                    )
                    stubber.add_response(
                        "list_aws_default_service_quotas", {"Quotas": DEFAULTS}, {"ServiceCode": "medical-imaging"}
                    )
            elif service == "lambda":
                stubber = Stubber(made)
                if configuration and not any(s.client.meta.service_model.service_name == "lambda" for s in stubbers):
                    stubber.add_response(
                        "get_function_configuration",
                        {
                            "FunctionName": FUNCTION_NAME,
                            "FunctionArn": FUNCTION_ARN,
                            "Environment": {
                                "Variables": {
                                    **self.environment,
                                    "POWERTOOLS_SERVICE_NAME": SERVICE,
                                    "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
                                }
                            },
                        },
                        {"FunctionName": FUNCTION_NAME},
                    )
                stubber.add_response(
                    "get_function_concurrency",
                    {}
                    if self.reserved_concurrency is None
                    else {"ReservedConcurrentExecutions": self.reserved_concurrency},
                    {"FunctionName": FUNCTION_NAME},
                )
                stubber.add_response(
                    "get_account_settings",
                    {"AccountLimit": {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": self.unreserved}},
                    {},
                )
            else:
                return made
            stubber.activate()
            stubbers.append(stubber)
            return made

        return client

    def function(self) -> doctor.Function:
        return doctor.Function(
            arn=FUNCTION_ARN,
            settings=function_module("settings").Settings.model_validate(
                {**self.environment, "IDEMPOTENCY_TABLE": self.deployment.table_name}
            ),
            service=SERVICE,
            namespace=NAMESPACE,
        )

    def metrics(self, at: datetime = NOW, **sums: float) -> None:
        """The function's metrics over the last day, a few hours before `at`."""
        boto3.client("cloudwatch", region_name=REGION).put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": "service", "Value": SERVICE}],
                    "Value": value,
                    "Timestamp": at - timedelta(hours=3),
                }
                for name, value in sums.items()
            ],
        )


# What Service Quotas publishes by default for HealthImaging (the codes doctor matches, and another).
DEFAULTS = [
    {
        "ServiceCode": "medical-imaging",
        "QuotaCode": CONCURRENT_COPIES,
        "QuotaName": "Maximum concurrent CopyImageSet requests per data store",
        "Value": 100.0,
        "Adjustable": True,
    },
    {
        "ServiceCode": "medical-imaging",
        "QuotaCode": "L-11111111",
        "QuotaName": "Maximum number of data stores",
        "Value": 10.0,
        "Adjustable": True,
    },
]


@pytest.fixture
def account() -> Iterator[Account]:
    with mock_aws():
        sqs, events, sns = (boto3.client(s, region_name=REGION) for s in ("sqs", "events", "sns"))
        urls = {
            name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("admission", "dlq", "completion", "cdlq")
        }

        def arn(name: str) -> str:
            return str(
                sqs.get_queue_attributes(QueueUrl=urls[name], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            )

        for rule, target, pattern in (
            ("import", arn("admission"), {"EventPattern": '{"source": ["aws.medical-imaging"]}'}),
            ("completion", arn("completion"), {"EventPattern": '{"source": ["aws.medical-imaging"]}'}),
            ("dispatcher", FUNCTION_ARN, {"ScheduleExpression": "rate(1 minute)"}),
            ("reconciliation", FUNCTION_ARN, {"ScheduleExpression": "rate(15 minutes)"}),
        ):
            events.put_rule(Name=rule, **pattern)  # type: ignore[arg-type]
            events.put_targets(Rule=rule, Targets=[{"Id": "1", "Arn": target}])
        topic = sns.create_topic(Name="alarms")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn("dlq"))  # confirmed at once (moto and SQS)
        environment = {
            "DATASTORE_ID": DATASTORE,
            "COPY_POLICY": "snapshot",
            "COPY_RATE_PER_SECOND": "0.24",
            "CONCURRENT_COPY_QUOTA": "100",
            "COMPLETION_QUEUE_ARN": arn("completion"),
        }
        yield Account(
            Deployment(
                function_name=FUNCTION_NAME,
                table_name="copies",
                state_machine_arn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:copy",
                admission_queue_url=urls["admission"],
                dead_letter_queue_url=urls["dlq"],
                completion_dead_letter_queue_url=urls["cdlq"],
                alarm_topic_arn=topic,
            ),
            arn("completion"),
            environment,
        )


def examined(account: Account) -> list[doctor.Line]:
    return list(doctor.examine(account.clients(), account.deployment, account.function(), now=NOW))


def findings(lines: list[doctor.Line]) -> list[str]:
    return [line.name for line in lines if line.verdict is Verdict.FINDING]


def test_an_account_as_the_design_assumes_gets_a_clean_bill(account: Account) -> None:
    account.metrics(CopiesCompleted=40, CopiesWoken=39, CompletionEventsMissed=1, CopiesStarted=40, CopyThrottles=1)
    lines = examined(account)
    assert findings(lines) == []
    by_name = {line.name: str(line) for line in lines}
    assert by_name["concurrent-copies"].startswith("ok concurrent-copies: concurrentCopyQuota 100 <= Maximum")
    assert "AWS default" in by_name["concurrent-copies"]  # nothing applied: the default is the account's
    assert by_name["copy-rate"].startswith("note copy-rate: Service Quotas publishes no quota")
    for read in ("get-image-set-rate", "get-image-set-metadata-rate", "search-image-sets-rate"):
        assert by_name[read].startswith(f"note {read}: Service Quotas publishes no quota"), by_name[read]
    assert "39 woken by their events, 1 found by their fallback look" in by_name["events"]
    assert "0.025 a copy" in by_name["pushed-back"]
    rules = [line for line in lines if line.name.startswith("rules-")]
    assert [line.name for line in rules] == [
        "rules-admission",
        "rules-completion",
        "rules-schedules",
        "rules-schedules",
    ]
    assert all(line.verdict is Verdict.OK for line in rules)


def _raised_concurrent_copies(account: Account) -> None:
    account.quotas = [{**DEFAULTS[0], "Value": 50.0}]


def _copy_rate_quota(account: Account) -> None:
    account.environment["COPY_RATE_PER_SECOND"] = "10"
    account.quotas = [
        {
            "ServiceCode": "medical-imaging",
            "QuotaCode": "L-22222222",
            "QuotaName": "Rate of CopyImageSet requests",
            "Value": 15.0,
            "Period": {"PeriodValue": 1, "PeriodUnit": "MINUTE"},  # 0.25 a second
        }
    ]


def _get_image_set_quota(account: Account) -> None:
    """A published GetImageSet quota under getImageSetRatePerSecond; GetImageSetMetadata's, raised, is not it."""
    account.environment["GET_IMAGE_SET_RATE_PER_SECOND"] = "40"
    account.quotas = [
        {
            "ServiceCode": "medical-imaging",
            "QuotaCode": "L-33333333",
            "QuotaName": "Rate of GetImageSetMetadata requests",
            "Value": 100.0,
        },
        {
            "ServiceCode": "medical-imaging",
            "QuotaCode": "L-44444444",
            "QuotaName": "Rate of GetImageSet requests",
            "Value": 25.0,
        },
    ]


def _reserved_too_small(account: Account) -> None:
    account.reserved_concurrency = 5


def _pool_too_small(account: Account) -> None:
    account.environment["COPY_RATE_PER_SECOND"] = "10"
    account.unreserved = 40


def _rule_disabled(account: Account) -> None:
    boto3.client("events", region_name=REGION).disable_rule(Name="completion")


def _no_import_rule(account: Account) -> None:
    events = boto3.client("events", region_name=REGION)
    events.remove_targets(Rule="import", Ids=["1"])


def _dead_letter(account: Account) -> None:
    boto3.client("sqs", region_name=REGION).send_message(
        QueueUrl=account.deployment.completion_dead_letter_queue_url, MessageBody="{}"
    )


def _nobody_subscribed(account: Account) -> None:
    sns = boto3.client("sns", region_name=REGION)
    for subscription in sns.list_subscriptions_by_topic(TopicArn=account.deployment.alarm_topic_arn)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])


@pytest.mark.parametrize(
    ("breaking", "named"),
    [
        (_raised_concurrent_copies, "concurrent-copies"),
        (_copy_rate_quota, "copy-rate"),
        (_get_image_set_quota, "get-image-set-rate"),
        (_reserved_too_small, "lambda-reserved-concurrency"),
        (_pool_too_small, "lambda-account-concurrency"),
        (_rule_disabled, "rules-completion"),
        (_no_import_rule, "rules-admission"),
        (_dead_letter, "dead-letters-completion"),
        (_nobody_subscribed, "alarm-topic"),
        (lambda a: a.metrics(CopiesCompleted=20, CopiesWoken=2, CompletionEventsMissed=18), "events-not-arriving"),
        (lambda a: a.metrics(CopiesStarted=100, CopyThrottles=4, CopyQuotaExceeded=3), "pushed-back"),
        (lambda a: a.metrics(LiveBacklogLateSeconds=4000), "backlog-late"),
        (lambda a: a.metrics(AwaitCopyFailures=2), "await-copy-failing"),
        (lambda a: a.refused.add("service-quotas"), "unchecked-quotas"),
    ],
)
def test_each_way_the_account_disagrees_is_its_own_finding(
    account: Account, breaking: Callable[[Account], None], named: str
) -> None:
    breaking(account)
    lines = examined(account)
    assert findings(lines) == [named], "\n".join(map(str, lines))


def test_bulk_work_late_against_its_share_is_a_note_not_a_finding(account: Account) -> None:
    """As the BulkBacklogLate alarm, which informs and pages nobody: a backfill late against its share."""
    account.metrics(BulkBacklogLateSeconds=4000)
    lines = examined(account)
    assert findings(lines) == []
    assert [line.name for line in lines if line.name == "bulk-late"] == ["bulk-late"]


def test_few_copies_with_their_events_missing_decide_nothing(account: Account) -> None:
    """As the CompletionEventsNotArriving alarm: a quiet day's one missed event is not half of anything."""
    account.metrics(CopiesCompleted=3, CompletionEventsMissed=3)
    assert findings(examined(account)) == []


def test_doctors_judgements_are_the_alarms() -> None:
    assert doctor.FALLBACK_SHARE_ALARM_PERCENT == monitoring.FALLBACK_SHARE_ALARM_PERCENT
    assert doctor.FALLBACK_SHARE_MIN_COPIES == monitoring.FALLBACK_SHARE_MIN_COPIES
    assert doctor.BACKLOG_LATE_ALARM_SECONDS == monitoring.BACKLOG_LATE_ALARM_SECONDS


@pytest.mark.parametrize(("rate", "needed"), [(0.24, 10), (0.25, 10), (1.0, 13), (10.0, 58), (40.0, 184), (50.0, 226)])
def test_the_lambda_environments_needed_follow_the_scale_models_rows(rate: float, needed: int) -> None:
    assert doctor.lambda_environments_needed(rate) == needed


# --- the command: names as options (a script's), or from the stack's outputs; the exit status says whether to look
def doctor_options(account: Account) -> list[str]:
    deployment = account.deployment
    return [
        "doctor",
        "--function-name",
        deployment.function_name,
        "--table-name",
        deployment.table_name,
        "--state-machine-arn",
        deployment.state_machine_arn,
        "--admission-queue-url",
        deployment.admission_queue_url,
        "--queue-url",
        deployment.dead_letter_queue_url,
        "--completion-dead-letter-queue-url",
        deployment.completion_dead_letter_queue_url,
        "--alarm-topic-arn",
        deployment.alarm_topic_arn,
    ]


@pytest.mark.parametrize("dead_letter", [False, True], ids=["clean", "a completion dead letter"])
def test_the_command_prints_a_line_a_check_and_exits_1_on_a_finding(
    account: Account, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dead_letter: bool
) -> None:
    account.metrics(datetime.now(tz=UTC), CopiesCompleted=12, CopiesWoken=12, CopiesStarted=12)  # the command's day
    if dead_letter:
        _dead_letter(account)
    monkeypatch.setattr(cli.boto3, "client", account.clients(configuration=True))
    assert cli.main(doctor_options(account)) == (1 if dead_letter else 0)
    out = capsys.readouterr().out.splitlines()
    assert all(line.split(" ", 1)[0] in ("ok", "note", "FINDING") for line in out), out
    assert ("FINDING dead-letters-completion: about 1 message(s)" in "\n".join(out)) == dead_letter
    assert any(line.startswith("ok events: 12 copies completed") for line in out)


def test_redrive_chooses_its_queue_and_refuses_the_other_queues_names(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--queue completion` takes the completion queue's names (its dead-letter queue, back to the completion
    queue); the admission queue's options beside it are refused before any call."""
    deployment = account.deployment
    sqs = boto3.client("sqs", region_name=REGION)
    completion = sqs.create_queue(QueueName="completion-target")["QueueUrl"]
    copied = copy_outcome_event(DATASTORE, "b" * 32, "COPIED", 1_767_225_600, account=ACCOUNT, region=REGION)
    sqs.send_message(QueueUrl=deployment.completion_dead_letter_queue_url, MessageBody=json.dumps(copied))
    options = ["--completion-dead-letter-queue-url", deployment.completion_dead_letter_queue_url]
    assert cli.main(["redrive", "--queue", "completion", *options, "--completion-queue-url", completion]) == 0
    assert "moved 1 event(s) to the completion queue" in capsys.readouterr().out
    (moved,) = sqs.receive_message(QueueUrl=completion)["Messages"]
    assert json.loads(moved["Body"]) == copied
    with pytest.raises(SystemExit) as refused:
        cli.main(["redrive", "--queue", "completion", "--queue-url", deployment.dead_letter_queue_url])
    assert refused.value.code == 2
    assert "--queue-url is the admission queue's" in capsys.readouterr().err


# --- the canary: one copy on the synthesized workflow (the local runner), events as the emulator is told to name them
@pytest.mark.slow
@pytest.mark.parametrize(
    ("named", "says"),
    [
        ("destination", "this account's copy outcome events name the destination"),
        ("source", "this account's copy outcome events name the source"),
        ("both", "this account's copy outcome events name the destination and the source"),
        ("none", None),
    ],
)
def test_the_canary_copies_once_and_says_which_image_sets_the_events_named(named: CopyEvents, says: str | None) -> None:
    clock = VirtualClock()
    emulator = HealthImagingEmulator(clock=clock.now, copy_events=named)
    emulator.create_datastore(DS)
    source = emulator.seed_image_set(DS, seed.image_set_metadata(patient_number=1, study=1, series=[1]))
    with local_pipeline(emulator, clock) as pipeline:
        deployment = Deployment(
            function_name=FUNCTION_NAME,
            table_name=RUNNER_TABLE,
            state_machine_arn=pipeline.state_machine_arn,
            admission_queue_url="",
            dead_letter_queue_url="",
            completion_dead_letter_queue_url="",
            alarm_topic_arn="",
        )
        settings = function_module("settings").Settings.model_validate(
            {**os.environ, "IDEMPOTENCY_TABLE": RUNNER_TABLE}  # the function's, as the runner sets it
        )
        function = doctor.Function(arn=FUNCTION_ARN, settings=settings, service=SERVICE, namespace=NAMESPACE)

        def client(service: str) -> Any:
            if service != "medical-imaging":
                return boto3.client(service, region_name=RUNNER_REGION)
            made = boto3.client(service, region_name=RUNNER_REGION, config=Config(inject_host_prefix=False))
            attach(made, emulator)
            return made

        clock.join()  # the canary waits on the pipeline's clock
        try:
            lines = canary.canary(
                client,
                deployment,
                function,
                source,
                start_copy=lambda copy_input: start(
                    state_machine_arn=pipeline.state_machine_arn, copy_input=copy_input
                ),
                waiting=canary.Waiting(now=clock.now, sleep=clock.sleep),
            )
        finally:
            clock.leave()
    by_name = {line.name: line for line in lines}
    (copy,) = emulator.accepted_copies(source)  # one snapshot copy, into a new image set
    assert copy.new_destination and by_name["canary-copy"].verdict is Verdict.OK
    assert f"copied into {copy.destination_id} version 1" in by_name["canary-copy"].message
    expected = {"destination": named in ("destination", "both"), "source": named in ("source", "both")}
    for role, came in expected.items():
        line = by_name[f"canary-event-{role}"]
        assert (line.verdict is Verdict.OK) == came, str(line)
        if came:  # the event's time is the copy's landing second
            assert _iso(math.floor(copy.completes_at)) in line.message
    if says is None:
        assert findings(lines) == ["canary-events"]
        assert by_name["canary-woken"].message.startswith("found by its fallback look")
    else:
        assert findings(lines) == [] and by_name["canary-events"].message == says
        assert by_name["canary-woken"].message == "woken by its completion event"
    landed = by_name["canary-landed"]  # the produced version's own updatedAt: when the copy landed
    assert landed.verdict is Verdict.OK
    assert f"({copy.completes_at - math.floor(copy.accepted_at):.0f} s after the call)" in landed.message


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")


def test_the_lambda_environments_are_the_scale_tables_reserves() -> None:
    """doctor's LAMBDA_ENVIRONMENTS: for each quota, the most any row of docs/figures.md's scale table reserves."""
    reserves: dict[float, int] = {}
    for row in scale_table():
        quota, reserve = float(row["Q (TPS)"]), int(re.search(r"reserve (\d+)", row[RESERVE])[1])  # type: ignore[index]
        reserves[quota] = max(reserves.get(quota, 0), reserve)
    assert dict(doctor.LAMBDA_ENVIRONMENTS) == reserves
