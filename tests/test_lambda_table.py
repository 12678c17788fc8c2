"""The function's table access: a conditional call or a transaction answers "not written" when, and only when,
its condition failed (or, for a transaction, DynamoDB cancelled it); anything else raises."""

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


def test_a_transaction_answers_false_when_cancelled_and_raises_on_anything_else(function: Function) -> None:
    table = function.modules.table
    errors = function.modules.errors
    put = ("Put", {"Item": {"id": {"S": "k"}}, "ConditionExpression": "attribute_not_exists(id)"})
    other = ("Put", {"Item": {"id": {"S": "other"}}})

    assert table.transact_write([put, other]) is True
    assert table.transact_write([put, ("Put", {"Item": {"id": {"S": "third"}}})]) is False  # k exists: cancelled
    assert table.get_item("third") is None  # nothing of a cancelled transaction is written
    with pytest.raises(errors.TableUnavailable) as raised:
        table.transact_write([other, other])  # two writes of one item: refused, not cancelled
    assert raised.value.code == "ValidationException"
