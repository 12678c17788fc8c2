"""ValidateInput: the console contract, HealthImaging events, skips, and bad input of every kind.

Stubbers with no queued answers are active: any HealthImaging call would fail the test."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from function_stubs import DATASTORE, FUNCTION_ENV, SOURCE, Function, step
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offline import seed

OTHER = "d" * 32


def validate(function: Function, raw: Any) -> dict[str, Any]:
    return function.invoke(step("validate", input=raw))


def rejected(function: Function, raw: Any) -> str:
    with pytest.raises(Exception) as raised:
        validate(function, raw)
    assert type(raised.value).__name__ == "InvalidCopyRequest", raised.value
    return str(raised.value)


def test_two_fields_are_enough_from_the_console(function: Function) -> None:
    plan = validate(function, {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE})
    assert plan["request"] == {
        "datastoreId": DATASTORE,
        "sourceImageSetId": SOURCE,
        "sourceVersionId": None,
        "destinationImageSetId": None,
        "destinationVersionId": None,
        "copiableAttributes": None,
        "force": False,
        "promoteToPrimary": False,
    }
    assert plan["skip"] is False and plan["resolveDestination"] is False


@pytest.mark.parametrize("spelling", ["imageSetId", "imagesetId"])
def test_events_with_either_id_spelling(function: Function, spelling: str) -> None:
    plan = validate(function, seed.image_set_created_event(DATASTORE, SOURCE, version="3", id_spelling=spelling))
    assert plan["request"]["sourceImageSetId"] == SOURCE
    assert plan["request"]["sourceVersionId"] == "3"


def record_accepted_copy(function: Function, copy_request: dict[str, Any], *, into: str, version: str) -> None:
    modules = function.modules
    parsed = modules.models.CopyRequest.model_validate(copy_request)
    record = modules.copy_record.begin_call(
        parsed,
        previous=None,
        source_version_id="1",
        baseline_version_id=None if parsed.destination_image_set_id is None else str(int(version) - 1),
        execution_id="test",
    )
    modules.copy_record.mark_accepted(record, destination_image_set_id=into, destination_version_id=version)


@pytest.mark.parametrize("version", ["1", None])
def test_copy_storm_guard_skips_an_image_set_a_copy_of_ours_created(function: Function, version: str | None) -> None:
    record_accepted_copy(function, {"datastoreId": DATASTORE, "sourceImageSetId": OTHER}, into=SOURCE, version="1")
    event = seed.image_set_created_event(DATASTORE, SOURCE)
    if version is None:
        del event["detail"]["imageSetVersion"]
    plan = validate(function, event)
    assert plan["skip"] is True and "copy-storm" in plan["reason"]


@pytest.mark.parametrize(
    "function_env", [{**FUNCTION_ENV, "TRIGGER_DETAIL_TYPES": "Image Set Created,Image Set Updated"}]
)
@pytest.mark.parametrize(("version", "skipped"), [("2", True), ("3", False), (None, False)])
def test_copy_storm_guard_claims_only_the_versions_of_a_merge_destination_we_produced(
    function: Function, version: str | None, skipped: bool
) -> None:
    """A merge writes into the user's own image set: only the version our copy produced is ours."""
    merge = {"datastoreId": DATASTORE, "sourceImageSetId": OTHER, "destinationImageSetId": SOURCE}
    record_accepted_copy(function, merge, into=SOURCE, version="2")
    event = seed.image_set_created_event(DATASTORE, SOURCE, version=version or "1")
    event["detail-type"] = "Image Set Updated"
    if version is None:
        del event["detail"]["imageSetVersion"]
    plan = validate(function, event)
    assert plan["skip"] is skipped


def test_detail_types_that_are_not_triggers_are_skipped(function: Function) -> None:
    event = seed.image_set_created_event(DATASTORE, SOURCE)
    event["detail-type"] = "Image Set Copied"
    plan = validate(function, event)
    assert plan["skip"] is True and "does not trigger" in plan["reason"]


@pytest.mark.parametrize("function_env", [{**FUNCTION_ENV, "COPY_POLICY": "merge-into-primary"}])
def test_merge_policy_skips_primary_and_resolves_non_primary(function: Function) -> None:
    assert validate(function, seed.image_set_created_event(DATASTORE, SOURCE, is_primary=True))["skip"] is True
    plan = validate(function, seed.image_set_created_event(DATASTORE, SOURCE, is_primary=False))
    assert plan["resolveDestination"] is True and plan["skip"] is False


@pytest.mark.parametrize("function_env", [{**FUNCTION_ENV, "COPY_POLICY": "off"}])
def test_policy_off_skips_events_but_serves_the_console(function: Function) -> None:
    assert validate(function, seed.image_set_created_event(DATASTORE, SOURCE))["skip"] is True
    assert validate(function, {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE})["skip"] is False


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"sourceImageSetId": SOURCE}, "datastoreId"),
        ({"datastoreId": DATASTORE, "sourceImageSetId": "NOT-AN-ID"}, "sourceImageSetId"),
        (
            {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "destinationImagesetId": SOURCE},
            "destinationImagesetId",
        ),
        ({"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "force": "yes"}, "force"),
        ({"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "promoteToPrimary": 1}, "promoteToPrimary"),
        ({"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "sourceVersionId": "v1"}, "sourceVersionId"),
        ({"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "destinationVersionId": "2"}, "destinationVersionId"),
        (
            {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "copiableAttributes": "{not json"},
            "copiableAttributes",
        ),
        ({"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "copiableAttributes": "[1, 2]"}, "copiableAttributes"),
        (
            {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "copiableAttributes": {"Study": "x"}},
            "copiableAttributes",
        ),
        (
            {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "generation": 3},
            "generation",
        ),  # internal: not accepted
        ({"datastoreId": "f" * 32, "sourceImageSetId": SOURCE}, "datastoreId"),
        ("just a string", "JSON object"),
    ],
)
def test_bad_console_input_names_the_field(function: Function, raw: Any, named: str) -> None:
    assert named in rejected(function, raw)


def test_oversized_copiable_attributes_are_refused_before_any_call(function: Function) -> None:
    series = {f"1.2.{i}": {"Instances": {f"1.2.{i}.{j}": {} for j in range(40)}} for i in range(800)}
    message = rejected(
        function,
        {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "copiableAttributes": {"Study": {"Series": series}}},
    )
    assert "copiableAttributes" in message and "260000" in message


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda e: e.update(source="aws.s3"), "source"),
        (lambda e: e["detail"].update(datastoreId="f" * 32), "datastoreId"),
        (lambda e: e["detail"].pop("imageSetId"), "imageSetId"),
        (lambda e: e["detail"].update(imageSetVersion="latest"), "imageSetVersion"),
        (lambda e: e["detail"].update(isPrimary="no"), "isPrimary"),
        (lambda e: e.pop("detail"), "detail"),
    ],
)
def test_bad_events_name_the_field(function: Function, mutate: Any, named: str) -> None:
    event = seed.image_set_created_event(DATASTORE, SOURCE)
    mutate(event)
    assert named in rejected(function, event)


ids = st.text(alphabet=string.ascii_letters + string.digits + "-_ ", max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.fixed_dictionaries(
        {"datastoreId": st.one_of(ids, st.just(DATASTORE)), "sourceImageSetId": st.one_of(ids, json_values)},
        optional={
            "force": json_values,
            "destinationImageSetId": ids,
            "copiableAttributes": json_values,
            "sourceVersionId": json_values,
            "extra": json_values,
        },
    )
)
def test_fuzzed_console_input_is_accepted_or_refused_before_any_call(function: Function, raw: dict[str, Any]) -> None:
    try:
        plan = validate(function, raw)
    except Exception as error:
        assert type(error).__name__ == "InvalidCopyRequest", error
        return
    assert plan["request"]["sourceImageSetId"] == raw["sourceImageSetId"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    detail=st.dictionaries(
        st.sampled_from(["datastoreId", "imageSetId", "imagesetId", "imageSetVersion", "isPrimary", "other"]),
        json_values,
        max_size=6,
    ),
    detail_type=st.sampled_from(["Image Set Created", "Image Set Updated", "x"]),
)
def test_fuzzed_events_are_planned_or_refused_before_any_call(
    function: Function, detail: dict[str, Any], detail_type: str
) -> None:
    event = seed.image_set_created_event(DATASTORE, SOURCE)
    event["detail"], event["detail-type"] = detail, detail_type
    try:
        plan = validate(function, json.loads(json.dumps(event)))
    except Exception as error:
        assert type(error).__name__ == "InvalidCopyRequest", error
        return
    assert plan["skip"] or plan["request"]["sourceImageSetId"] in (detail.get("imageSetId"), detail.get("imagesetId"))


def test_unknown_actions_and_bad_step_payloads_are_refused(function: Function) -> None:
    for event in ({"action": "delete_everything"}, {"action": "start_copy", "request": {"datastoreId": DATASTORE}}):
        with pytest.raises(Exception) as raised:
            function.invoke(event)
        assert type(raised.value).__name__ == "InvalidCopyRequest"
