"""Static scanners on the synthesized stack: cdk-nag's AwsSolutions and HIPAA Security packs (every
synth in these tests runs them and raises on a finding not acknowledged) and checkov (installed apart,
requirements-checkov.txt). Every finding is fixed or accepted with a reason of its own where the
scanner reads it, and every acceptance is still needed."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks
from stack_app import CUSTOM_SETTINGS, synthesize

pytestmark = pytest.mark.slow
# The Makefile installs checkov in a venv of its own inside the dev venv (its pins conflict).
CHECKOV = Path(sys.executable).parent.parent / "checkov" / "bin" / "checkov"
SETTINGS = {"defaults": {}, "custom": CUSTOM_SETTINGS}


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_every_acknowledged_cdk_nag_finding_is_raised_without_its_acknowledgment(settings: dict[str, Any]) -> None:
    stack, _ = synthesize(**settings)
    # validate_scope reports every finding, acknowledged or not.
    raised = {
        f"{pack.name}::{violation.rule_name}"
        for pack in (AwsSolutionsChecks(), HIPAASecurityChecks())
        for violation in pack.validate_scope(stack).violations
    }
    assert set(stack.pipeline.accepted_findings) == raised


def test_each_cdk_nag_acknowledgment_has_a_reason_of_its_own() -> None:
    reasons = list(synthesize()[0].pipeline.accepted_findings.values())
    assert len(set(reasons)) == len(reasons), "one reason per finding, not a blanket one"
    assert all(len(reason.split()) >= 10 for reason in reasons), [r for r in reasons if len(r.split()) < 10]


@cache
def _checkov(settings: str, *, without_skips: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(template, checkov's report) for one of SETTINGS; without_skips: the template's checkov Metadata removed."""
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make setup`"
    template = synthesize(**SETTINGS[settings])[1].to_json()
    if without_skips:
        for resource in template["Resources"].values():
            resource.get("Metadata", {}).pop("checkov", None)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "template.json"
        path.write_text(json.dumps(template))
        # --skip-download: offline, no call to the vendor's platform.
        result = subprocess.run(
            [CHECKOV, "--file", path, "--framework", "cloudformation", "--skip-download", "--output", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0, result.stderr
    assert report["summary"]["resource_count"] == len(template["Resources"]), "checkov did not read every resource"
    return template, report


@pytest.mark.parametrize("settings", SETTINGS)
def test_checkov_fails_nothing_and_each_skip_has_its_own_reason(settings: str) -> None:
    _, report = _checkov(settings)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    reasons = [c["check_result"]["suppress_comment"] for c in report["results"]["skipped_checks"]]
    assert reasons and all(len(reason.split()) >= 10 for reason in reasons)
    assert len(set(reasons)) == len(reasons), "each skipped check needs its own reason"


@pytest.mark.parametrize("settings", SETTINGS)
def test_every_checkov_skip_is_needed(settings: str) -> None:
    skipped = {(c["check_id"], c["resource"]) for c in _checkov(settings)[1]["results"]["skipped_checks"]}
    unskipped = _checkov(settings, without_skips=True)[1]
    assert {(c["check_id"], c["resource"]) for c in unskipped["results"]["failed_checks"]} == skipped
