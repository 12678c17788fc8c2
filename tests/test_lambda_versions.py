"""Old function versions (action `prune_versions`): a version is deleted only once no execution can use it (the
version after it published more than 17 days ago), the newest ten never, and the function itself never."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber
from function_stubs import Function, lambda_context

NOW = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
DAY = 86_400
NAME = "HealthImagingCopy-CopyImageSetFunction"


def published(days_ago: float) -> str:
    return datetime.fromtimestamp(NOW - days_ago * DAY, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def listing(ages_in_days: list[float]) -> dict[str, Any]:
    """$LATEST and versions 1..n, published `ages_in_days[i]` days ago."""
    versions = [{"Version": "$LATEST", "LastModified": published(0)}]
    versions += [{"Version": str(i + 1), "LastModified": published(age)} for i, age in enumerate(ages_in_days)]
    return {"Versions": versions}


def prune(function: Function, monkeypatch: pytest.MonkeyPatch, ages_in_days: list[float]) -> tuple[Any, list[str]]:
    versions = importlib.import_module("copier.versions")
    monkeypatch.setattr(function.modules.clock, "now", lambda: NOW)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", NAME)
    with Stubber(versions._lambda()) as lambda_:
        lambda_.add_response("list_versions_by_function", listing(ages_in_days), {"FunctionName": NAME})
        result = versions.prune_versions()
        deleted = list(result.deleted)
        lambda_.assert_no_pending_responses()
    return result, deleted


def test_a_version_goes_17_days_after_the_next_one_was_published(
    function: Function, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = importlib.import_module("copier.versions")
    monkeypatch.setattr(function.modules.clock, "now", lambda: NOW)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", NAME)
    # Fourteen deploys, one every 5 days: 70 days ago ... 5 days ago.
    ages = [70.0 - 5 * i for i in range(14)]
    with Stubber(versions._lambda()) as lambda_:
        lambda_.add_response("list_versions_by_function", listing(ages), {"FunctionName": NAME})
        # Versions 1-4 are past the newest ten; of those, each one's successor was published 65, 60, 55, 50 days
        # ago: all retired. Version 5's successor is 45 days old but it is among the newest ten: kept.
        for version in ("1", "2", "3", "4"):
            lambda_.add_response("delete_function", {}, {"FunctionName": NAME, "Qualifier": version})
        result = versions.prune_versions()
        lambda_.assert_no_pending_responses()
    assert result.deleted == ["1", "2", "3", "4"]
    assert result.kept == [str(v) for v in range(5, 15)]


def test_a_version_an_execution_may_still_use_is_kept_however_many_deploys_followed(
    function: Function, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thirty deploys in the last 15 days: versions 1-20 are past the newest ten, and every successor is younger
    # than 17 days: a copy execution started on version 1 (2 days) and redriven (14 days) can still run.
    result, deleted = prune(function, monkeypatch, [15.0 - 0.5 * i for i in range(30)])
    assert deleted == [] and len(result.kept) == 30


def test_the_step_runs_it_from_the_schedule(function: Function, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = importlib.import_module("copier.versions")
    monkeypatch.setattr(function.modules.clock, "now", lambda: NOW)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", NAME)
    with Stubber(versions._lambda()) as lambda_:
        lambda_.add_response("list_versions_by_function", listing([40.0] * 10 + [1.0]), {"FunctionName": NAME})
        lambda_.add_response("delete_function", {}, {"FunctionName": NAME, "Qualifier": "1"})
        answer = function.handler.handler({"action": "prune_versions"}, lambda_context())
        lambda_.assert_no_pending_responses()
    assert answer == {"deleted": ["1"], "kept": [str(v) for v in range(2, 12)]}
