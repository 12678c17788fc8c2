"""Lambda entry point: the state machine calls it once per step, schedule rules run the dispatcher and
reconciliation, and two queues deliver events in batches: new image sets to admit, copy outcomes that
wake waiting copies (see copier/steps.py)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from copier.copy_start import idempotency_config
from copier.steps import run_batch, run_step

# Steps that emit no metric are normal here; Powertools would warn on every one.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="executionId")
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Lets idempotency expire an in-progress record when this invocation times out.
    idempotency_config.register_lambda_context(context)
    if "Records" in event:  # the admission queue, or the completion queue
        return run_batch(event, context)
    return run_step(event)
