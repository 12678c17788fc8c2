"""The operations dashboard plots what the function really emits: the metric names of its add_metric
calls (read from lambda/ by their syntax tree), in the namespace and with the dimensions Powertools
gives them under the function's synthesized environment."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from stack_app import ACCOUNT, REGION, resolved, resources, synthesize

from infra import metrics

pytestmark = pytest.mark.slow
LAMBDA_SOURCE = Path(__file__).resolve().parent.parent / "lambda"


def emitted_metric_names() -> set[str]:
    """The names of every add_metric call in the function's code. A name that is not a string literal
    is looked up in the string values of the module's dict literals (steps.py counts errors that way);
    a module with a computed name and no such dict fails, rather than hiding a metric."""
    names: set[str] = set()
    for path in sorted([LAMBDA_SOURCE / "handler.py", *LAMBDA_SOURCE.glob("copier/**/*.py")]):
        tree = ast.parse(path.read_text())
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "add_metric"):
                continue
            (name,) = [k.value for k in call.keywords if k.arg == "name"] or call.args[:1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                names.add(name.value)
                continue
            in_dicts = {
                v.value
                for node in tree.body
                if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict)
                for v in node.value.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            }
            assert in_dicts, f"{path.name}:{call.lineno}: cannot tell which metric this add_metric emits"
            names |= in_dicts
    return names


def test_the_functions_code_declares_no_dimension_the_dashboard_would_miss() -> None:
    for path in [LAMBDA_SOURCE / "handler.py", *LAMBDA_SOURCE.glob("copier/**/*.py")]:
        assert "add_dimension" not in path.read_text(), f"{path.name}: plot the new dimension on the dashboard"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return synthesize()[1].to_json()


def _widgets(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard body's widgets as CloudWatch reads them."""
    ((_, dashboard),) = resources(template, "AWS::CloudWatch::Dashboard").items()
    arns = {
        "AWS::CloudWatch::Alarm": "arn:aws:cloudwatch:{region}:{account}:alarm:{id}",
        "AWS::StepFunctions::StateMachine": "arn:aws:states:{region}:{account}:stateMachine:{id}",
    }
    refs = {
        f"{i}.Arn": arns["AWS::CloudWatch::Alarm"].format(region=REGION, account=ACCOUNT, id=i)
        for i in resources(template, "AWS::CloudWatch::Alarm")
    }
    for i in resources(template, "AWS::StepFunctions::StateMachine"):
        refs[i] = arns["AWS::StepFunctions::StateMachine"].format(region=REGION, account=ACCOUNT, id=i)
    refs |= {f"{i}.QueueName": i for i in resources(template, "AWS::SQS::Queue")}
    refs |= {i: i for i in resources(template, "AWS::Lambda::Function")}
    widgets: list[dict[str, Any]] = json.loads(resolved(dashboard["Properties"]["DashboardBody"], refs))["widgets"]
    return widgets


def _plotted(template: dict[str, Any]) -> list[list[Any]]:
    """Every metric of every widget: [namespace, name, dimension, value, ..., {options}]."""
    return [m for widget in _widgets(template) for m in widget["properties"].get("metrics", [])]


def test_the_dashboard_plots_every_metric_the_function_emits_and_nothing_else(template: dict[str, Any]) -> None:
    (function,) = resources(template, "AWS::Lambda::Function").values()
    environment = function["Properties"]["Environment"]["Variables"]
    namespace = environment["POWERTOOLS_METRICS_NAMESPACE"]
    ours = [m for m in _plotted(template) if m[0] == namespace]
    assert {m[1] for m in ours} == emitted_metric_names()
    # The dimensions Powertools puts on them under the function's environment, exactly.
    emf = Metrics(namespace=namespace, service=environment["POWERTOOLS_SERVICE_NAME"])
    emf.add_metric(name="Probe", unit=MetricUnit.Count, value=1)
    document = emf.serialize_metric_set()
    (dimension_names,) = document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    expected_dimensions = [part for name in dimension_names for part in (name, document[name])]
    for metric in ours:
        assert metric[2:-1] == expected_dimensions, metric
        gauges = {
            **dict.fromkeys((*metrics.LIVE_BACKLOG, *metrics.BULK_BACKLOG), "Maximum"),
            **dict.fromkeys((*metrics.PACE, *metrics.PLANNED_RATE), "Minimum"),
        }
        assert metric[-1]["stat"] == gauges.get(metric[1], "Sum")


def test_the_dashboard_shows_executions_by_status_function_throttles_dlq_depth_and_alarms(
    template: dict[str, Any],
) -> None:
    plotted = {(m[0], m[1]) for m in _plotted(template)}
    statuses = {f"Executions{s}" for s in ("Started", "Succeeded", "Failed", "TimedOut", "Aborted")}
    assert {("AWS/States", name) for name in (*statuses, "ExecutionThrottled")} <= plotted
    assert {("AWS/Lambda", "Throttles"), ("AWS/Lambda", "Errors")} <= plotted
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in plotted
    (alarm_widget,) = [w for w in _widgets(template) if w["type"] == "alarm"]
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{i}" for i in alarms
    )


def test_the_dashboard_url_is_an_output(template: dict[str, Any]) -> None:
    ((dashboard_id, dashboard),) = resources(template, "AWS::CloudWatch::Dashboard").items()
    name = resolved(dashboard["Properties"]["DashboardName"], {})
    url = resolved(template["Outputs"]["DashboardUrl"]["Value"], {dashboard_id: name}, template["Mappings"])
    assert url == f"https://console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards/dashboard/{name}"
    assert name == f"HealthImagingCopy-{REGION}"


def test_the_backlog_row_shows_its_way_in_its_way_out_and_each_lanes_age(template: dict[str, Any]) -> None:
    titles = {w["properties"].get("title", ""): w for w in _widgets(template)}
    (live,) = [w for title, w in titles.items() if title.startswith("Live lane")]
    (bulk,) = [w for title, w in titles.items() if title.startswith("Bulk lane")]
    (flow,) = [w for title, w in titles.items() if title.startswith("Backlog: copies admitted")]
    assert [m[1] for m in live["properties"]["metrics"]] == [
        "LiveOldestPendingAgeSeconds",
        "LiveBacklogLateSeconds",
        "ApproximateNumberOfMessagesVisible",
    ]
    assert [m[1] for m in bulk["properties"]["metrics"]] == [
        "BulkOldestPendingAgeSeconds",
        "BulkBacklogLateSeconds",
        "LegacyEntriesLabelled",
    ]
    assert [m[1] for m in flow["properties"]["metrics"]] == [
        "CopiesAdmitted",
        "CopiesSkipped",
        "LiveCopiesDispatched",
        "BulkCopiesDispatched",
    ]
    (queue_metric,) = [m for m in live["properties"]["metrics"] if m[0] == "AWS/SQS"]
    admission_queue = next(name for name in resources(template, "AWS::SQS::Queue") if "AdmissionQueue" in name)
    assert admission_queue in json.dumps(queue_metric)
