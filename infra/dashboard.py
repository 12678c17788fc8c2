"""The operations dashboard: what copies do, how HealthImaging pushes back, how executions end,
what is waiting in the dead-letter queue, and the alarms."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from . import metrics

PERIOD = Duration.minutes(5)


class OperationsDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        function: lambda_.Function,
        admission_queue: sqs.Queue,
        dead_letter_queue: sqs.Queue,
        completion_dead_letter_queue: sqs.Queue,
        copy_rate_per_second: float,
        alarms: Sequence[cloudwatch.Alarm],
        name: str,
        service: str,
    ) -> None:
        super().__init__(scope, construct_id)
        # Dashboards are global to an account: the Region keeps two stacks of the same name apart.
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{name}-{Stack.of(self).region}", default_interval=Duration.days(1)
        )
        self._service = service
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=3)
        )
        self.dashboard.add_widgets(
            self._graph("Copies: started, completed, failed, forced", metrics.COPIES, width=12),
            cloudwatch.GraphWidget(
                title="Executions by status",
                width=12,
                left=[
                    state_machine.metric_started(period=PERIOD, label="Started"),
                    state_machine.metric_succeeded(period=PERIOD, label="Succeeded"),
                    state_machine.metric_failed(period=PERIOD, label="Failed"),
                    state_machine.metric_timed_out(period=PERIOD, label="TimedOut"),
                    state_machine.metric_aborted(period=PERIOD, label="Aborted"),
                    state_machine.metric_throttled(period=PERIOD, label="Throttled"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            self._graph("HealthImaging pushback: conflicts, throttles, quota", metrics.PUSHBACK, width=8),
            self._graph("Force decisions", metrics.FORCE_DECISIONS, width=8),
            self._graph("Uncertain outcomes, duplicates, wait timeouts", metrics.UNCERTAIN_OUTCOMES, width=8),
        )
        self.dashboard.add_widgets(
            self._graph(
                "Backlog: copies admitted, skipped; dispatched from each lane",
                (*metrics.ADMISSION, *metrics.DISPATCHED),
                width=8,
            ),
            self._lane(
                "Live lane (new imports): oldest pending copy, how late, admission queue depth",
                metrics.LIVE_BACKLOG,
                right=[
                    admission_queue.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="Events to admit"
                    )
                ],
            ),
            self._lane(
                "Bulk lane (backfills, large retries): oldest pending copy, how late against its share",
                metrics.BULK_BACKLOG,
                right=[
                    metrics.function_metric(
                        metrics.LEGACY[0],
                        service=service,
                        statistic="Sum",
                        period=PERIOD,
                        label="Entries of 0.2.0 labelled (after an upgrade)",
                    )
                ],
            ),
        )
        self.dashboard.add_widgets(
            self._graph("Reconciliation: copies no event announced", metrics.RECONCILIATION, width=8),
            self._graph("Backfill: existing image sets looked at", metrics.BACKFILL, width=8),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="CopyImageSet pace (copies a second): lower than configured when the quota is shared",
                width=8,
                left=[
                    metrics.function_metric(
                        metrics.PACE[0], service=service, statistic="Minimum", period=PERIOD, label="Pace"
                    )
                ],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=copy_rate_per_second, label="copyRatePerSecond")
                ],
            ),
            cloudwatch.GraphWidget(
                title="Planned copy rate (copies a second) and what each HealthImaging budget allows: the lowest binds",
                width=8,
                left=[
                    metrics.function_metric(name, service=service, statistic="Minimum", period=PERIOD, label=name)
                    for name in metrics.PLANNED_RATE
                ],
            ),
            self._graph(
                "Completion events: wake-ups, ignored, stale tokens, missed; AwaitCopy failures",
                metrics.COMPLETION,
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Completion events not used (copies looked at after their fallback wait)",
                width=8,
                left=[
                    completion_dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="Messages"
                    )
                ],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Copy function: invocations, errors, throttles",
                width=12,
                left=[
                    function.metric_invocations(period=PERIOD, label="Invocations"),
                    function.metric_errors(period=PERIOD, label="Errors"),
                    function.metric_throttles(period=PERIOD, label="Throttles"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queue depth (events to redrive)",
                width=12,
                left=[
                    dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="Messages"
                    )
                ],
            ),
        )

    def _lane(self, title: str, names: Sequence[str], *, right: list[cloudwatch.IMetric]) -> cloudwatch.GraphWidget:
        """One lane of the backlog: its oldest pending copy's age and how late it is (seconds, the worst of each
        period), beside `right`."""
        age, late = names
        return cloudwatch.GraphWidget(
            title=title,
            width=8,
            left=[
                metrics.function_metric(
                    age, service=self._service, statistic="Maximum", period=PERIOD, label="Oldest pending (s)"
                ),
                metrics.function_metric(
                    late, service=self._service, statistic="Maximum", period=PERIOD, label="Late beyond its rate (s)"
                ),
            ],
            right=right,
        )

    def _graph(self, title: str, names: Sequence[str], *, width: int) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title,
            width=width,
            left=[
                metrics.function_metric(service=self._service, name=name, statistic="Sum", period=PERIOD, label=name)
                for name in names
            ],
        )
