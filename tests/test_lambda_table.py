"""The function's table access: a conditional call answers None when, and only when, its condition failed."""

from __future__ import annotations

import pytest
from function_stubs import Function


def test_a_conditional_call_answers_none_when_its_condition_failed_and_raises_on_anything_else(
    function: Function,
) -> None:
    table = function.modules.table
    errors = function.modules.errors
    put = {"Item": {"id": {"S": "k"}, "n": {"N": "1"}}, "ConditionExpression": "attribute_not_exists(id)"}

    assert table.call_if("put_item", **put) is not None
    assert table.call_if("put_item", **put) is None  # the item exists now
    assert table.get_item("k") == {"id": "k", "n": 1}
    with pytest.raises(errors.TableUnavailable) as raised:
        table.call_if("put_item", Item={"id": {"N": "1"}}, ConditionExpression="attribute_not_exists(id)")
    assert raised.value.code == "ValidationException"
