"""The HealthImagingCopy construct in a host app: its props are the settings model's, a bad one names itself,
two of them (two data stores) share a stack without a name collision or a cdk-nag finding, and it takes the
host's alarm topic."""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from stack_app import FIRST, NO_BUNDLING, SECOND, two_in_one_stack

from infra.healthimaging_copy import HealthImagingCopy
from infra.settings import CONSTRUCT_PROPS, SettingsError, StackSettings

pytestmark = pytest.mark.slow


def physical_names(template: dict[str, Any]) -> list[str]:
    names = []
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("StateMachineName", "AlarmName", "DashboardName", "LogGroupName"):
            if key in properties:
                names.append(repr(properties[key]))  # log group names hold intrinsic functions: compared whole
    return names


def test_two_constructs_in_one_stack_synthesize_clean_and_name_nothing_twice() -> None:
    _, research, clinical, template = two_in_one_stack()
    names = physical_names(template)
    assert len(names) == 2 * (2 + 13 + 1 + 2), names  # per construct: 2 state machines, 13 alarms, 1 dashboard, 2 logs
    assert [name for name, count in Counter(names).items() if count > 1] == []
    assert (research.name_prefix, clinical.name_prefix) == ("Imaging-Research", "Imaging-Clinical")
    assert research.service != clinical.service  # their alarms read their own function's metrics
    machines = [
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    assert sorted(m["StateMachineName"] for m in machines) == [
        "Imaging-Clinical-backfill",
        "Imaging-Clinical-copy",
        "Imaging-Research-backfill",
        "Imaging-Research-copy",
    ]
    # Each function is told its own copy state machine's ARN (the dispatcher starts it) and its own data store.
    functions = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    told = sorted(
        (f["Environment"]["Variables"]["DATASTORE_ID"], str(f["Environment"]["Variables"]["STATE_MACHINE_ARN"]))
        for f in functions
    )
    assert [datastore for datastore, _ in told] == [FIRST, SECOND]
    assert "Imaging-Research-copy" in told[0][1] and "Imaging-Clinical-copy" in told[1][1]


def test_each_construct_alarms_on_its_own_function_metrics() -> None:
    _, research, clinical, template = two_in_one_stack()
    services = {
        dimension["Value"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        for dimension in resource["Properties"].get("Dimensions", [])
        if dimension["Name"] == "service"
    }
    assert services == {research.service, clinical.service}


def test_the_props_are_the_settings_model_s_fields() -> None:
    parameters = inspect.signature(HealthImagingCopy.__init__).parameters
    props = {name for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert props == {*CONSTRUCT_PROPS, "alarm_topic"}
    assert set(CONSTRUCT_PROPS) == set(StackSettings.model_fields) - {"account", "region"}
    # Left out, a prop takes the settings model's default: only the data store is required.
    assert [name for name in props if parameters[name].default is not None] == ["datastore_id"]
    assert parameters["datastore_id"].default is inspect.Parameter.empty


@pytest.mark.parametrize(
    ("props", "named"),
    [
        ({"datastore_id": "not-a-data-store"}, "datastore_id"),
        ({"copy_rate_per_second": 51.0}, "copy_rate_per_second"),
        ({"concurrent_copy_quota": 0}, "concurrent_copy_quota"),
        ({"bulk_minimum_share": 0.75}, "bulk_minimum_share"),
        ({"completion_wait_seconds": 0}, "completion_wait_seconds"),
        ({"copy_policy": "sometimes"}, "copy_policy"),
        ({"trigger_detail_types": ["Image Set Copied"]}, "trigger_detail_types"),
        ({"poll_initial_seconds": 60, "poll_max_seconds": 10}, "poll_max_seconds must be >= poll_initial_seconds"),
        ({"log_retention_days": 7}, "log_retention_days"),
    ],
)
def test_a_bad_prop_names_itself(props: dict[str, Any], named: str) -> None:
    stack = cdk.Stack(cdk.App(context=NO_BUNDLING), "Host")
    with pytest.raises(SettingsError) as raised:
        HealthImagingCopy(stack, "Copy", **{"datastore_id": FIRST, **props})
    assert named in str(raised.value)
    assert "Host/Copy" in str(raised.value)


def test_it_takes_the_host_app_s_alarm_topic() -> None:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Host")
    topic = sns.Topic(stack, "OnCall")
    pipeline = HealthImagingCopy(stack, "Copy", datastore_id=FIRST, alarm_topic=topic)
    assert pipeline.alarm_topic is topic
    template = Template.from_stack(stack).to_json()
    topics = [logical_id for logical_id, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    assert topics == [stack.get_logical_id(topic.node.default_child)]  # type: ignore[arg-type]
    alarms = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    actions = [alarm["AlarmActions"] for alarm in alarms if "AlarmActions" in alarm]
    assert len(actions) == 12 and all(a == [{"Ref": topics[0]}] for a in actions)
    assert [alarm["AlarmName"] for alarm in alarms if "AlarmActions" not in alarm] == ["Host-Copy-BulkBacklogLate"]
    with pytest.raises(SettingsError, match="alarm_topic or alarm_topic_arn"):
        HealthImagingCopy(
            stack,
            "Other",
            datastore_id=SECOND,
            alarm_topic=topic,
            alarm_topic_arn="arn:aws:sns:eu-west-1:111122223333:x",
        )


def test_public_attributes_let_the_host_wire_more() -> None:
    stack, research, _, _ = two_in_one_stack()
    resolved = {
        name: stack.resolve(getattr(research, name).node.default_child.logical_id)
        for name in ("table", "function", "state_machine", "backfill_state_machine", "admission_queue",
                     "dead_letter_queue", "completion_queue", "completion_dead_letter_queue", "dashboard", "key")
    }  # fmt: skip
    assert len(set(resolved.values())) == len(resolved)
    assert len(research.alarms) == 12 and len(research.information_alarms) == 1
    assert research.alarm_topic is research.monitoring.own_topic
