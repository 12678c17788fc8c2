"""ValidateInput: the console contract, HealthImaging events, skips, and bad input of every kind.

Stubbers with no queued answers are active: any HealthImaging call would fail the test."""

from __future__ import annotations

import json
import string
from collections import Counter
from typing import Any

import pytest
from function_stubs import DATASTORE, FUNCTION_ENV, SOURCE, Function, healthimaging_calls, step
from hypothesis import example, given, settings
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
            {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "destinationImageSetId": SOURCE},
            "destinationImageSetId: is the source image set",
        ),
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
resource_ids = st.from_regex(r"[0-9a-z]{32}", fullmatch=True)  # valid ids, mixed in: the accepted branch runs
version_ids = st.from_regex(r"[0-9]{1,20}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
valid_console_input = st.fixed_dictionaries(
    {"datastoreId": st.just(DATASTORE), "sourceImageSetId": resource_ids},
    optional={
        "force": st.booleans(),
        "destinationImageSetId": resource_ids,
        "copiableAttributes": st.none() | st.just({"Study": {"Series": {"1.2.3": {}}}}),
        "sourceVersionId": version_ids,
    },
)
fuzzed_console_input = st.fixed_dictionaries(
    {
        "datastoreId": st.one_of(ids, st.just(DATASTORE)),
        "sourceImageSetId": st.one_of(resource_ids, ids, json_values),
    },
    optional={
        "force": st.one_of(st.booleans(), json_values),
        "destinationImageSetId": st.one_of(resource_ids, ids),
        "copiableAttributes": json_values,
        "sourceVersionId": st.one_of(version_ids, json_values),
        "extra": json_values,
    },
)


def test_fuzzed_console_input_is_accepted_as_given_or_refused_before_any_call(function: Function) -> None:
    outcomes: Counter[str] = Counter()
    calls = healthimaging_calls(function)

    @settings(max_examples=150, deadline=None)
    @given(raw=st.one_of(valid_console_input, fuzzed_console_input))
    @example(raw={"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "force": True, "sourceVersionId": "3"})
    @example(raw={"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, "destinationImageSetId": "x"})
    def accepted_as_given_or_refused(raw: dict[str, Any]) -> None:
        try:
            plan = validate(function, raw)
        except Exception as error:
            assert type(error).__name__ == "InvalidCopyRequest", error
            outcomes["refused"] += 1
            return
        request = plan["request"]
        assert (plan["skip"], request["datastoreId"], request["sourceImageSetId"]) == (
            False,
            DATASTORE,
            raw["sourceImageSetId"],
        )
        assert (request["sourceVersionId"], request["destinationImageSetId"], request["force"]) == (
            raw.get("sourceVersionId"),
            raw.get("destinationImageSetId"),
            raw.get("force", False),
        )
        assert (request["copiableAttributes"] is None) == (raw.get("copiableAttributes") is None)
        assert "extra" not in raw
        outcomes["accepted"] += 1

    accepted_as_given_or_refused()
    assert outcomes["accepted"] and outcomes["refused"], outcomes  # both branches ran (each half the inputs or so)
    assert calls == []


valid_detail = st.fixed_dictionaries(
    {"datastoreId": st.just(DATASTORE), "imageSetId": resource_ids},
    optional={
        "imageSetVersion": st.one_of(version_ids, st.integers(min_value=0, max_value=10**6)),
        "isPrimary": st.booleans(),
    },
)
fuzzed_detail = st.fixed_dictionaries(
    {},
    optional={
        "datastoreId": st.one_of(st.just(DATASTORE), json_values),
        "imageSetId": st.one_of(resource_ids, json_values),
        "imagesetId": st.one_of(resource_ids, json_values),
        "imageSetVersion": st.one_of(version_ids, json_values),
        "isPrimary": st.one_of(st.booleans(), json_values),
        "other": json_values,
    },
)


def test_fuzzed_events_are_planned_as_announced_or_refused_before_any_call(function: Function) -> None:
    outcomes: Counter[str] = Counter()
    calls = healthimaging_calls(function)

    @settings(max_examples=100, deadline=None)
    @given(
        detail=st.one_of(valid_detail, fuzzed_detail),
        detail_type=st.sampled_from(["Image Set Created", "Image Set Created", "Image Set Updated", "x"]),
    )
    @example(
        detail={"datastoreId": DATASTORE, "imagesetId": SOURCE, "imageSetVersion": 2}, detail_type="Image Set Created"
    )
    @example(detail={"datastoreId": DATASTORE, "imageSetId": SOURCE}, detail_type="Image Set Updated")
    @example(detail={"datastoreId": DATASTORE, "imageSetId": 1}, detail_type="Image Set Created")
    def planned_as_announced_or_refused(detail: dict[str, Any], detail_type: str) -> None:
        event = seed.image_set_created_event(DATASTORE, SOURCE)
        event["detail"], event["detail-type"] = detail, detail_type
        try:
            plan = validate(function, json.loads(json.dumps(event)))
        except Exception as error:
            assert type(error).__name__ == "InvalidCopyRequest", error
            outcomes["refused"] += 1
            return
        announced = detail["imageSetId"] if "imageSetId" in detail else detail["imagesetId"]
        if detail_type != "Image Set Created":
            assert plan["skip"] and "does not trigger" in plan["reason"]
            outcomes["skipped"] += 1
            return
        version = detail.get("imageSetVersion")
        request = plan["request"]
        assert (plan["skip"], request["datastoreId"], request["sourceImageSetId"], request["sourceVersionId"]) == (
            False,
            DATASTORE,
            announced,
            None if version is None else str(version),
        )
        outcomes["planned"] += 1

    planned_as_announced_or_refused()
    assert outcomes["planned"] and outcomes["skipped"] and outcomes["refused"], outcomes  # every branch ran
    assert calls == []  # an event given to an execution by hand is planned from what it says


def test_unknown_actions_and_bad_step_payloads_are_refused(function: Function) -> None:
    for event in ({"action": "delete_everything"}, {"action": "start_copy", "request": {"datastoreId": DATASTORE}}):
        with pytest.raises(Exception) as raised:
            function.invoke(event)
        assert type(raised.value).__name__ == "InvalidCopyRequest"
