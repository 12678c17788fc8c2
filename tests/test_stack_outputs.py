"""The operator CLI finds the names it takes in the deployed stack's outputs, as the construct publishes them:
in this app's stack, and in a host app's stack holding two pipelines. DescribeStacks is answered by a botocore
Stubber on a real CloudFormation client (its parameters and answers checked against the service model), with the
outputs of the synthesized templates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from stack_app import synthesize, two_in_one_stack

from infra.settings import DEFAULT_STACK_NAME
from ops import cli, stack_outputs
from ops.stack_outputs import (
    DATASTORE,
    DEFAULT_STACK,
    STACK_VARIABLE,
    STATE_MACHINE,
    TABLE,
    StackName,
    StackNamesError,
    pipeline_outputs,
)

pytestmark = pytest.mark.slow  # synthesizes the app and a host app (shared with tests/test_stack*.py, test_construct)

EVERY_NAME = [value for value in vars(stack_outputs).values() if isinstance(value, StackName)]


def described(stack_name: str, output_keys: list[str], status: str = "CREATE_COMPLETE") -> dict[str, Any]:
    """DescribeStacks' answer for a stack with these outputs, each valued `value-of-<key>`."""
    return {
        "Stacks": [
            {
                "StackName": stack_name,
                "StackId": f"arn:aws:cloudformation:us-east-1:111122223333:stack/{stack_name}/1",
                "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                "StackStatus": status,
                "Outputs": [{"OutputKey": key, "OutputValue": f"value-of-{key}"} for key in output_keys],
            }
        ]
    }


@pytest.fixture
def cloudformation() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("cloudformation", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def app_output_keys() -> list[str]:
    return list(synthesize()[1].to_json()["Outputs"])


def host_output_keys() -> list[str]:
    return list(two_in_one_stack()[3]["Outputs"])


def test_every_name_the_cli_takes_is_an_output_of_the_app_s_stack_and_of_each_construct_in_a_host_stack() -> None:
    outputs = {name.output for name in EVERY_NAME}
    assert outputs <= set(app_output_keys())
    assert {f"{prefix}{output}" for prefix in ("Research", "Clinical") for output in outputs} <= set(host_output_keys())
    assert DEFAULT_STACK == DEFAULT_STACK_NAME


def test_the_app_s_stack_is_found_by_its_default_name(cloudformation: tuple[Any, Stubber]) -> None:
    client, stubber = cloudformation
    stubber.add_response("describe_stacks", described(DEFAULT_STACK, app_output_keys()), {"StackName": DEFAULT_STACK})
    outputs = pipeline_outputs(DEFAULT_STACK, client=client)
    assert outputs[TABLE.output] == "value-of-CopyTableName"
    assert outputs[DATASTORE.output] == "value-of-DatastoreId"


def test_one_of_two_pipelines_in_a_host_stack_is_chosen_by_its_path(cloudformation: tuple[Any, Stubber]) -> None:
    client, stubber = cloudformation
    for _ in range(3):
        stubber.add_response("describe_stacks", described("Imaging", host_output_keys()), {"StackName": "Imaging"})
    research = pipeline_outputs("Imaging/Research", client=client)
    clinical = pipeline_outputs("Imaging/Default/Clinical", client=client)  # `Default` is left out, as CDK does
    with pytest.raises(StackNamesError) as neither:
        pipeline_outputs("Imaging", client=client)
    assert research[TABLE.output] == "value-of-ResearchCopyTableName"
    assert clinical[STATE_MACHINE.output] == "value-of-ClinicalStateMachineArn"
    assert str(neither.value) == (
        "stack Imaging holds 2 pipelines: choose one with --stack Imaging/Clinical or Imaging/Research"
    )


@pytest.mark.parametrize(
    ("stack", "answer", "message"),
    [
        (
            "Imaging/Reserch",
            described(
                "Imaging", ["ResearchCopyTableName", "ResearchStateMachineArn", "ResearchBackfillStateMachineArn"]
            ),
            "stack Imaging has no pipeline at Reserch; it holds: Imaging/Research",
        ),
        (
            "Other",
            described("Other", ["BucketName"], status="UPDATE_COMPLETE"),
            "stack Other (UPDATE_COMPLETE) has no healthimaging-copy outputs (CopyTableName, StateMachineArn,"
            " BackfillStateMachineArn, each under its construct's path)",
        ),
    ],
    ids=["a mistyped path", "another stack"],
)
def test_a_stack_without_the_pipeline_asked_for_is_named_with_what_it_holds(
    cloudformation: tuple[Any, Stubber], stack: str, answer: dict[str, Any], message: str
) -> None:
    client, stubber = cloudformation
    stubber.add_response("describe_stacks", answer, {"StackName": stack.partition("/")[0]})
    with pytest.raises(StackNamesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pipeline_outputs(stack, client=client)


def test_a_stack_that_does_not_exist_is_named_with_where_it_was_looked_for(
    cloudformation: tuple[Any, Stubber],
) -> None:
    client, stubber = cloudformation
    stubber.add_client_error(
        "describe_stacks",
        service_error_code="ValidationException",
        service_message="Stack with id HealthImagingCopyDev does not exist",
        expected_params={"StackName": "HealthImagingCopyDev"},
    )
    with pytest.raises(StackNamesError, match=r"^no stack HealthImagingCopyDev in us-east-1: name it with --stack"):
        pipeline_outputs("HealthImagingCopyDev", client=client)


def run_cli(
    argv: list[str], client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any], str]:
    """The CLI's main with this CloudFormation client; what the command was given instead of run."""
    given: dict[str, Any] = {}

    def journal_entries(**kwargs: Any) -> list[dict[str, Any]]:
        given.update(kwargs)
        return []

    def start(**kwargs: Any) -> str:
        given.update(kwargs)
        return "arn:aws:states:us-east-1:111122223333:execution:HealthImagingCopy-copy:console-1"

    monkeypatch.setattr(cli, "_cloudformation", lambda: client)
    monkeypatch.setattr(cli, "journal_entries", journal_entries)
    monkeypatch.setattr(cli, "start", start)
    try:
        status = cli.main(argv)
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    return status, given, capsys.readouterr().err


def test_commands_run_without_names_from_the_stack_the_environment_names(
    cloudformation: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = cloudformation
    monkeypatch.setenv(STACK_VARIABLE, "Imaging/Research")
    stubber.add_response("describe_stacks", described("Imaging", host_output_keys()), {"StackName": "Imaging"})
    stubber.add_response("describe_stacks", described("Imaging", host_output_keys()), {"StackName": "Imaging"})
    listed = run_cli(["list", "--status", "failed"], client, monkeypatch, capsys)
    started = run_cli(["start", "--source-image-set-id", "a" * 32], client, monkeypatch, capsys)
    assert listed[:2] == (0, {"table_name": "value-of-ResearchCopyTableName", "image_set_id": None,
                               "status": "FAILED", "since": 0.0})  # fmt: skip
    assert started[0] == 0
    assert started[1]["state_machine_arn"] == "value-of-ResearchStateMachineArn"
    assert started[1]["copy_input"]["datastoreId"] == "value-of-ResearchDatastoreId"


def test_names_given_as_options_are_used_without_reading_the_stack(
    cloudformation: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client, _ = cloudformation  # no answer queued: a DescribeStacks call would fail the test
    status, given, _ = run_cli(["list", "--table-name", "my-table", "--status", "failed"], client, monkeypatch, capsys)
    assert (status, given["table_name"]) == (0, "my-table")


def test_an_output_an_earlier_release_did_not_publish_is_named_with_the_option_that_gives_it(
    cloudformation: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = cloudformation
    without_datastore = [key for key in app_output_keys() if key != DATASTORE.output]  # 0.1.0 published none
    stubber.add_response("describe_stacks", described(DEFAULT_STACK, without_datastore), {"StackName": DEFAULT_STACK})
    status, given, error = run_cli(["start", "--source-image-set-id", "a" * 32], client, monkeypatch, capsys)
    assert (status, given) == (2, {})
    assert "stack HealthImagingCopy has no output DatastoreId" in error and "give --datastore-id" in error


def test_without_a_region_the_cli_says_what_chooses_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    for variable in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))  # no profile's region either
    with pytest.raises(SystemExit) as exit_:
        cli.main(["list", "--status", "failed"])
    assert exit_.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("You must specify a region: AWS_PROFILE and AWS_REGION choose the account and Region")
    )


# (command line, the function it calls, the outputs it reads)
NAMES_READ = [
    (["doctor"], "_doctor", {"CopyFunctionName", "CopyTableName", "StateMachineArn", "AdmissionQueueUrl",
                             "DeadLetterQueueUrl", "CompletionDeadLetterQueueUrl", "AlarmTopicArn"}),
    (["redrive"], "redrive", {"DeadLetterQueueUrl", "AdmissionQueueUrl"}),
    (["redrive", "--queue", "completion"], "redrive", {"CompletionDeadLetterQueueUrl", "CompletionQueueUrl"}),
]  # fmt: skip


@pytest.mark.parametrize("case", NAMES_READ, ids=lambda case: " ".join(case[0]))
def test_doctor_and_each_redrive_find_their_names_in_the_stacks_outputs(
    cloudformation: tuple[Any, Stubber],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[list[str], str, set[str]],
) -> None:
    """Each redrive reads only its own queue's pair (a completion dead letter never reaches the admission queue)."""
    argv, called, names = case
    client, stubber = cloudformation
    stubber.add_response("describe_stacks", described(DEFAULT_STACK, app_output_keys()), {"StackName": DEFAULT_STACK})
    given: list[Any] = []
    monkeypatch.setattr(cli, called, lambda *args, **kwargs: given.append((args, kwargs)) or 0)
    if called == "redrive":
        monkeypatch.setattr(cli.boto3, "client", lambda *_, **__: SimpleNamespace(
            get_queue_attributes=lambda **_: {"Attributes": {}}))  # fmt: skip
    status, _, error = run_cli(argv, client, monkeypatch, capsys)
    assert status == 0, error
    ((args, kwargs),) = given
    values = set(kwargs.values()) if kwargs else set(args[1].values())  # redrive's keywords, or _doctor's names
    assert values == {f"value-of-{name}" for name in names}
