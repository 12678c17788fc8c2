"""offline/ gets the template from the CDK app's entry point, never by importing infra/: `offline.template.synthesize`
runs app.py in a process of its own, as `cdk synth` does, and reads the cloud assembly it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.app import build_app
from offline import template
from offline.seed import DATASTORE_ID


@pytest.mark.slow
def test_app_py_run_as_a_process_gives_the_template_synthesized_in_process_logical_ids_included() -> None:
    settings = {"datastoreId": DATASTORE_ID, "copyPolicy": "merge-into-primary"}
    from_app_py = template.synthesize(settings)
    in_process = build_app({**settings, "aws:cdk:bundling-stacks": []}, nag=False).synth().stacks[0].template
    assert from_app_py == in_process
    (function,) = (r for r in from_app_py["Resources"].values() if r["Type"] == "AWS::Lambda::Function")
    assert function["Properties"]["Environment"]["Variables"]["COPY_POLICY"] == "merge-into-primary"  # not a default


def test_an_app_that_does_not_synthesize_is_an_error_carrying_what_it_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "app.py"
    app.write_text('import sys\nsys.exit("cdk.json / -c settings: datastoreId: must match [0-9a-z]{32}")\n')
    monkeypatch.setattr(template, "APP", app)
    with pytest.raises(RuntimeError, match=r"app.py did not synthesize \(exit 1\): .*datastoreId: must match"):
        template.synthesize({"datastoreId": "not-a-data-store"})
