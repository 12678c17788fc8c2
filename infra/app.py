"""Builds the CDK app: one stack per entry of the validated context settings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from .settings import OBSOLETE_SETTINGS, obsolete_settings_in, stack_settings_from_context
from .stack import CopyPipelineStack

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def build_app(context: dict[str, Any] | None = None, *, nag: bool = True) -> cdk.App:
    if context is None and "CDK_CONTEXT_JSON" not in os.environ:
        # `python app.py` without the CLI: take cdk.json's context as `cdk synth` would.
        context = {**json.loads(CDK_JSON.read_text()).get("context", {}), **_env_context()}
    app = cdk.App(context=context) if context is not None else cdk.App()
    settings_context = _context_of(app)
    settings_by_stack = stack_settings_from_context(settings_context)
    for name, settings in settings_by_stack.items():
        stack = CopyPipelineStack(
            app,
            name,
            settings=settings,
            # `account`/`region` settings pin a stack (dev and prod accounts from one app); otherwise the
            # CLI's current credentials decide, and `cdk deploy --profile` refuses a mismatched account.
            env=cdk.Environment(
                account=settings.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
                region=settings.region or os.environ.get("CDK_DEFAULT_REGION"),
            ),
            description=f"HealthImaging copy pipeline for data store {settings.datastore_id}",
        )
        for key in obsolete_settings_in(settings_context, name):
            cdk.Annotations.of(stack).add_warning_v2(
                f"healthimaging-copy:obsolete:{key}",
                f"The setting {key} no longer applies and is ignored: {OBSOLETE_SETTINGS[key]}"
                " (docs/operations.md, Upgrading). Remove it from cdk.json.",
            )
    if nag:
        from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks  # noqa: PLC0415 (synth-time only)

        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), HIPAASecurityChecks(app))
    return app


def _context_of(app: cdk.App) -> dict[str, Any]:
    """The whole context, as the CDK CLI passes it (cdk.json, cdk.context.json, `-c`, and CDK's own keys): every
    key is read, so a mistyped setting stops synth instead of being ignored (infra/settings.py)."""
    return dict(app.node.get_all_context())


def _env_context() -> dict[str, Any]:
    """`HEALTHIMAGING_COPY_CONTEXT='{"datastoreId": "..."}' python app.py`: settings without the CLI."""
    extra = os.environ.get("HEALTHIMAGING_COPY_CONTEXT")
    return json.loads(extra) if extra else {}
