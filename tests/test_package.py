"""The package as a platform team gets it: the wheel built from this repository, installed into a fresh virtual
environment outside it (its dependencies from the wheels `make setup` keeps, offline), gives the construct to a
CDK app of the team's own (its own stack, its own alarm topic) and the operator CLI as a console script."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = Path(sys.prefix) / "wheelhouse"  # the Makefile's `pip download` of the package's dependencies
DATASTORE_ID = "c" * 32

HOST_APP = """
import aws_cdk as cdk
from aws_cdk import aws_sns as sns

from healthimaging_copy import HealthImagingCopy

app = cdk.App()
stack = cdk.Stack(app, "PlatformImaging")
on_call = sns.Topic(stack, "OnCall")
pipeline = HealthImagingCopy(
    stack, "ImagingCopy", datastore_id="{datastore_id}", copy_policy="merge-into-primary", alarm_topic=on_call
)
cdk.CfnOutput(stack, "CopyTable", value=pipeline.table.table_name)
app.synth()
"""


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_packaged_modules_import_each_other_relatively() -> None:
    """Installed, infra/ and ops/ are healthimaging_copy.infra and healthimaging_copy.ops: an absolute `infra.`
    or `ops.` import inside them would find nothing (there is no top-level infra or ops in site-packages)."""
    absolute = []
    for path in [*(ROOT / "infra").glob("*.py"), *(ROOT / "ops").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            absolute += [f"{path.name}: {name}" for name in names if name.split(".")[0] in ("infra", "ops")]
    assert absolute == []


@pytest.mark.slow
def test_the_wheel_installs_apart_and_serves_a_host_app_and_the_cli(tmp_path: Path) -> None:
    assert WHEELHOUSE.is_dir(), f"{WHEELHOUSE} is missing: run `make setup`"
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp_path / "dist", ROOT, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("healthimaging_copy-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"healthimaging_copy", wheel.name.removesuffix("-py3-none-any.whl") + ".dist-info"}

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", WHEELHOUSE, wheel, cwd=tmp_path)

    app_dir = tmp_path / "platform-app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(textwrap.dedent(HOST_APP.format(datastore_id=DATASTORE_ID)))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("CDK_")
    }
    env["CDK_OUTDIR"] = str(app_dir / "cdk.out")
    env["CDK_CONTEXT_JSON"] = json.dumps({"aws:cdk:bundling-stacks": []})  # no bundling: no pip, no Docker
    run(python, "app.py", cwd=app_dir, env=env)
    template = json.loads((app_dir / "cdk.out" / "PlatformImaging.template.json").read_text())
    resources = template["Resources"]
    kinds = [resource["Type"] for resource in resources.values()]
    assert kinds.count("AWS::StepFunctions::StateMachine") == 2 and kinds.count("AWS::SNS::Topic") == 1
    (function,) = (r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function")
    assert function["Environment"]["Variables"]["DATASTORE_ID"] == DATASTORE_ID
    assert function["Environment"]["Variables"]["COPY_POLICY"] == "merge-into-primary"
    (topic_id,) = (logical_id for logical_id, r in resources.items() if r["Type"] == "AWS::SNS::Topic")
    assert topic_id.startswith("OnCall")  # the host's topic: the construct made none of its own
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    paging = [alarm for alarm in alarms if not alarm["AlarmName"].endswith("-BulkBacklogLate")]  # it informs
    assert len(paging) == len(alarms) - 1 and all(alarm["AlarmActions"] == [{"Ref": topic_id}] for alarm in paging)
    # The function's code asset is the installed package's lambda/, not this repository's.
    assets = json.loads((app_dir / "cdk.out" / "PlatformImaging.assets.json").read_text())["files"]
    sources = [Path(a["source"]["path"]) for a in assets.values() if a["source"].get("packaging") == "zip"]
    (source,) = sources
    assert (app_dir / "cdk.out" / source / "copier" / "journal.py").is_file()

    help_text = run(venv / "bin" / "healthimaging-copy", "--help", cwd=tmp_path, env=env)
    for command in ("start", "redrive", "resolve", "status", "list", "retry", "backfill", "doctor"):
        assert command in help_text
    assert help_text.startswith("usage: healthimaging-copy")
    # The CLI runs the function's journal code, and the construct bundles the function, from the installed package.
    where = run(
        python,
        "-c",
        "import healthimaging_copy.ops.cli, copier.journal\n"
        "from healthimaging_copy.infra.copy_function import LAMBDA_SOURCE\n"
        "print(copier.journal.__file__, LAMBDA_SOURCE)",
        cwd=tmp_path,
        env=env,
    )
    assert all(Path(path).is_relative_to(venv) for path in where.split()), where
