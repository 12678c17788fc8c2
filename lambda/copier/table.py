"""Access to the pipeline's DynamoDB table: one client, errors turned into TableUnavailable.

The same client serves Powertools idempotency (copy_start.py), the copy records and pacing,
so a cold start creates one DynamoDB client, not two.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from copier.errors import TableUnavailable
from copier.settings import table_settings

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# Standard retries ride out throttling and brief faults before a call reports TableUnavailable.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@lru_cache(maxsize=1)
def client() -> Any:
    return boto3.client("dynamodb", config=CLIENT_CONFIG)


def call(operation: str, **params: Any) -> dict[str, Any]:
    """One DynamoDB call on the pipeline's table (TableName is filled in)."""
    return _call(operation, TableName=table_settings().table_name, **params)


def transact_write(actions: list[tuple[str, dict[str, Any]]]) -> bool:
    """Writes that succeed or fail together: (action, parameters) pairs, e.g. ("Update", {...}). False when
    DynamoDB cancelled them (a condition failed, or a conflicting transaction: each caller says what it means);
    any other failure raises."""
    name = table_settings().table_name
    items = [{action: {"TableName": name, **params}} for action, params in actions]
    try:
        _call("transact_write_items", TransactItems=items)
    except TableUnavailable as error:
        if error.code == "TransactionCanceledException":
            return False
        raise
    return True


def _call(operation: str, **params: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = getattr(client(), operation)(**params)
        return result
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        item = error.response.get("Item")
        raise TableUnavailable(
            f"DynamoDB {operation} failed: {code}", code, from_dynamodb(item) if item else None
        ) from None
    except BotoCoreError as error:
        raise TableUnavailable(f"DynamoDB {operation} failed: {type(error).__name__}") from None


def is_condition_failure(error: TableUnavailable) -> bool:
    return error.code == "ConditionalCheckFailedException"


def call_if(operation: str, **params: Any) -> dict[str, Any] | None:
    """A conditional call on the pipeline's table: its answer, or None when its ConditionExpression failed
    (someone else moved the item on: each caller says what that means). Any other failure raises."""
    try:
        return call(operation, **params)
    except TableUnavailable as error:
        if is_condition_failure(error):
            return None
        raise


def get_item(key: str) -> dict[str, Any] | None:
    """One item as plain Python values, read consistently."""
    item = call("get_item", Key={"id": {"S": key}}, ConsistentRead=True).get("Item")
    return from_dynamodb(item) if item else None


def to_dynamodb(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}


def from_dynamodb(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}
