"""Alarms on what needs a person (`alarms`, each to the alarm topic): failed or timed-out copies, undecided
outcomes, undelivered events (either dead-letter queue), copies carried by their fallback wait rather than their
completion events, AwaitCopy's write failing, new imports late, a backfill that ended before its end, a dispatcher
that stopped running, function errors; and alarms that inform without paging (`information`): bulk work late."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from . import metrics

# A lane's oldest copy this much later than the rate the lane is promised explains: trouble, whatever the
# backlog's size (a 1M backfill is never late for its size alone). Another client taking half the quota for an
# hour makes a 50k burst at 10 TPS 24 min late (python -m benchmarks.scale --shared): not alarmed; for hours, it is.
BACKLOG_LATE_ALARM_SECONDS = 3600
# Copies found ended by their fallback look (no completion event woke them) over those completed, per hour: events
# are best effort, so one lost is nothing; half of an hour's copies for three hours in a row is events not arriving
# (the completion rule disabled, events naming neither image set, a delivery failing). Hours with fewer copies than
# this decide nothing (a quiet pipeline's one missed event is not half of anything).
FALLBACK_SHARE_ALARM_PERCENT = 50
FALLBACK_SHARE_MIN_COPIES = 10
FALLBACK_SHARE_HOURS = 3


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        backfill_state_machine: sfn.StateMachine,
        function: lambda_.Function,
        dead_letter_queue: sqs.IQueue,
        completion_dead_letter_queue: sqs.IQueue,
        alarm_topic: sns.ITopic | None,
        alarm_name_prefix: str,
        service: str,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarm_name_prefix = alarm_name_prefix
        # Its own topic, when none is given: the construct grants CloudWatch its use.
        self.own_topic = None if alarm_topic else sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True)
        self.topic: sns.ITopic = alarm_topic or self.own_topic  # type: ignore[assignment]
        five_minutes = Duration.minutes(5)
        hour = Duration.hours(1)
        self.alarms = [
            self._alarm(
                "ExecutionsFailed",
                state_machine.metric_failed(period=five_minutes),
                1,
                1,
                "A copy failed: see the execution's Error and Cause",
            ),
            self._alarm(
                "ExecutionsTimedOut",
                state_machine.metric_timed_out(period=five_minutes),
                1,
                1,
                "A copy execution timed out",
            ),
            self._alarm(
                "DeadLetters",
                dead_letter_queue.metric_approximate_number_of_messages_visible(period=five_minutes),
                1,
                1,
                "HealthImaging events were not delivered: redrive them (docs/operations.md)",
            ),
            # Copy outcome events the function could not use (or EventBridge could not deliver): their copies were
            # looked at after their fallback wait; a bad event or a permission keeps the next ones failing too.
            self._alarm(
                "CompletionDeadLetters",
                completion_dead_letter_queue.metric_approximate_number_of_messages_visible(period=five_minutes),
                1,
                1,
                "Copy outcome events were not delivered to the copies waiting for them: fix the cause, then"
                " healthimaging-copy redrive --queue completion (docs/operations.md)",
            ),
            # Copies carried by their fallback wait instead of their events: each waits completionWaitSeconds
            # or more for nothing (and the events' wake-ups are what the throughput figures assume).
            self._alarm(
                "CompletionEventsNotArriving",
                cloudwatch.MathExpression(
                    expression=(
                        f"IF(FILL(completed, 0) >= {FALLBACK_SHARE_MIN_COPIES},"
                        " 100 * FILL(missed, 0) / FILL(completed, 0), 0)"
                    ),
                    using_metrics={
                        name: metrics.function_metric(metric, service=service, statistic="Sum", period=hour)
                        for name, metric in (("missed", "CompletionEventsMissed"), ("completed", "CopiesCompleted"))
                    },
                    label="Copies found by their fallback look, % of those completed",
                    period=hour,
                ),
                FALLBACK_SHARE_ALARM_PERCENT,
                FALLBACK_SHARE_HOURS,
                f"Over {FALLBACK_SHARE_ALARM_PERCENT}% of the copies of each of the last {FALLBACK_SHARE_HOURS} hours"
                " ended unannounced (their fallback wait ran out): copy outcome events are not arriving; run"
                " healthimaging-copy doctor (docs/operations.md)",
            ),
            # AwaitCopy's write refused (not its condition): copies are looked at after growing waits instead.
            self._alarm(
                "AwaitCopyFailing",
                metrics.function_metric(
                    "AwaitCopyFailures", service=service, statistic="Sum", period=Duration.minutes(15)
                ),
                1,
                2,
                "AwaitCopy's DynamoDB write keeps failing (access denied, the key disabled, throttled): copies wait"
                " their fallback instead of their events; see AwaitCopy's error in an execution (docs/operations.md)",
            ),
            # ConfirmCopy could not tell whether a copy was accepted: an operator must look (docs/operations.md).
            self._alarm(
                "UndecidedCopyOutcomes",
                metrics.function_metric(
                    service=service, name="UndecidedCopyOutcomes", statistic="Sum", period=five_minutes
                ),
                1,
                1,
                "A copy's outcome cannot be decided: check and settle it with ops.cli resolve (docs/operations.md)",
            ),
            # HealthImaging's events are best effort: reconciliation found copies no event announced.
            self._alarm(
                "MissedEvents",
                metrics.function_metric(service=service, name=metrics.RECONCILIATION[0], statistic="Sum", period=hour),
                1,
                1,
                "Reconciliation admitted copies whose HealthImaging event never arrived (they are copied)",
            ),
            # The live lane's oldest copy later than the live copies ahead of it explain at the promised rate
            # (copier.dispatcher.planning.lateness): new imports are late. The age alone says nothing: a burst's
            # last copy waits hours at 0.24/s and is on time.
            self._alarm(
                "LiveBacklogLate",
                metrics.function_metric(
                    metrics.LIVE_BACKLOG[1], service=service, statistic="Maximum", period=Duration.minutes(15)
                ),
                BACKLOG_LATE_ALARM_SECONDS,
                2,
                "New imports (the backlog's live lane) wait over an hour longer than copyRatePerSecond (or the"
                " concurrent-copy quota) explains: CopyPace below the setting (another client of the quota), copies"
                " slower than usual, or starts failing (docs/operations.md, Alarms)",
            ),
            # Every dispatcher run writes how late the live lane is, 0 when empty: none for 15 minutes means the
            # backlog is not being drained (the schedule off, every run failing) and the lateness alarms, fed by
            # the same runs, cannot see it.
            self._alarm(
                "DispatcherSilent",
                metrics.function_metric(
                    metrics.LIVE_BACKLOG[1], service=service, statistic="SampleCount", period=five_minutes
                ),
                1,
                3,
                "The dispatcher has not run for 15 minutes: nothing pending is being started (docs/operations.md)",
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                missing=cloudwatch.TreatMissingData.BREACHING,
            ),
            # A backfill whose execution failed or timed out admits nothing more until it is resumed (a stop
            # aborts it: that is the operator's own doing, not alarmed).
            self._alarm(
                "BackfillEnded",
                cloudwatch.MathExpression(
                    expression="failed + timedOut",
                    using_metrics={
                        "failed": backfill_state_machine.metric_failed(period=five_minutes),
                        "timedOut": backfill_state_machine.metric_timed_out(period=five_minutes),
                    },
                    label="Backfill executions failed or timed out",
                    period=five_minutes,
                ),
                1,
                1,
                "A backfill stopped before its end: see ops.cli backfill status, then resume it (docs/operations.md)",
            ),
            # Named errors (conflicts, throttles) are retried by the workflow and count here too,
            # so the threshold looks for sustained trouble rather than one retry.
            self._alarm(
                "FunctionErrors",
                function.metric_errors(period=Duration.minutes(15)),
                25,
                2,
                "The copy function keeps failing",
            ),
        ]
        for alarm in self.alarms:
            alarm.add_alarm_action(actions.SnsAction(self.topic))
        # Information, not a page: the bulk lane (backfills, large retries) an hour behind what the live lane
        # leaves it of the quota (at least bulkMinimumShare). It shows on the dashboard; nobody is woken for a
        # backfill of weeks that runs an hour late, and what slows it (another client of the quota, slow
        # copies) pages through LiveBacklogLate when it slows new imports too.
        self.information = [
            self._alarm(
                "BulkBacklogLate",
                metrics.function_metric(
                    metrics.BULK_BACKLOG[1], service=service, statistic="Maximum", period=Duration.minutes(15)
                ),
                BACKLOG_LATE_ALARM_SECONDS,
                2,
                "Backfills and large retries (the backlog's bulk lane) are over an hour behind what new imports leave"
                " them of the quota (at least bulkMinimumShare): information, no action (docs/operations.md, Alarms)",
            )
        ]

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        threshold: int,
        periods: int,
        description: str,
        *,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self,
            name,
            # Named, so that key and topic policies can name this stack's alarms before they exist.
            alarm_name=f"{self.alarm_name_prefix}{name}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            alarm_description=description,
            comparison_operator=comparison,
            treat_missing_data=missing,
        )
