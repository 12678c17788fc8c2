"""Log group settings shared by the function's and the workflow's log groups."""

from __future__ import annotations

from aws_cdk import Aws, Fn
from aws_cdk import aws_logs as logs
from constructs import Construct

RETENTION = {
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    return RETENTION[days]


def vended_log_group_name(scope: Construct, service: str, name_prefix: str) -> str:
    """`/aws/vendedlogs/<service>/<name prefix>-<construct>-<end of the stack's id>` (infra/naming.py).

    Under /aws/vendedlogs/, a service's log delivery needs no statement in the account's CloudWatch
    Logs resource policy, whose size limit otherwise fails the deploy in busy accounts. The end of the
    stack's id (unique per stack instance) keeps a log group retained from a deleted stack from
    blocking a new one of the same name."""
    stack_uuid = Fn.select(2, Fn.split("/", Aws.STACK_ID))
    suffix = Fn.select(4, Fn.split("-", stack_uuid))
    return f"/aws/vendedlogs/{service}/{name_prefix}-{scope.node.id}-{suffix}"
