"""The function bundle: exactly the locked wheels (the versions the tests run), the code, no bytecode
for the wrong Python, the same bytes every time. Bundling downloads the wheels from PyPI (pip cache)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from infra.copy_function import LAMBDA_SOURCE, RUNTIME, CopyFunction, PipBundling
from infra.function_bundle import CONSTRAINTS, LOCK, REQUIREMENTS, canonical_name

pytestmark = pytest.mark.slow
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?==(\S+)", line)
        if match:
            pins[canonical_name(match.group(1))] = match.group(3)
    return pins


def test_the_lock_pins_what_lambda_requirements_pins_and_everything_under_it_with_hashes() -> None:
    locked = _pins(LOCK)
    wanted = _pins(REQUIREMENTS)
    assert wanted and {name: locked.get(name) for name in wanted} == wanted, "run `make lock`"
    assert "botocore" in locked and "aws-xray-sdk" in locked
    wheels = [line for line in LOCK.read_text().splitlines() if not line.startswith("#")]
    assert len(wheels) == len(locked) and all(re.search(r" --hash=sha256:[0-9a-f]{64}$", w) for w in wheels)
    assert _pins(CONSTRAINTS) == locked


def test_the_tests_run_the_versions_the_function_ships() -> None:
    installed = {name: importlib.metadata.version(name) for name in _pins(LOCK)}
    assert installed == _pins(LOCK)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    built = []
    for attempt in ("first", "second"):
        output = tmp_path_factory.mktemp(attempt)
        assert PipBundling().try_bundle(str(output), image=RUNTIME.bundling_image)
        built.append(output)
    return built


def test_the_bundle_is_the_locked_wheels_and_the_code_without_bytecode(bundles: list[Path]) -> None:
    bundle = bundles[0]
    installed = (d.name.removesuffix(".dist-info").rsplit("-", 1) for d in bundle.glob("*.dist-info"))
    dist_infos = {canonical_name(name): version for name, version in installed}
    assert dist_infos == _pins(LOCK)
    assert (bundle / "handler.py").is_file() and (bundle / "copier" / "steps.py").is_file()
    assert not (bundle / "requirements.txt").exists()
    files = [f for f in bundle.rglob("*") if f.is_file()]
    code = {path.relative_to(LAMBDA_SOURCE) for path in LAMBDA_SOURCE.rglob("*.py")}
    assert code - {f.relative_to(bundle) for f in files} == set()  # subpackages too (copier/dispatcher/)
    assert [f for f in files if f.suffix == ".pyc" or "__pycache__" in f.parts] == []
    assert sum(f.stat().st_size for f in files) < LAMBDA_UNZIPPED_LIMIT


def test_the_bundle_carries_the_json_parsers_c_backend_for_the_lambda_runtime(bundles: list[Path]) -> None:
    """Metadata documents are parsed by ijson's yajl2 C backend (copier/metadata.py): its build for the
    runtime, CPython 3.13 on arm64, with the yajl it links."""
    bundle = bundles[0]
    (extension,) = (bundle / "ijson" / "backends").glob("_yajl2.*.so")
    assert extension.name == "_yajl2.cpython-313-aarch64-linux-gnu.so"
    assert list((bundle / "ijson.libs").glob("libyajl*.so*"))


def test_the_bundle_is_reproducible(bundles: list[Path]) -> None:
    first, second = (_digest(bundle) for bundle in bundles)
    assert first == second


def _digest(bundle: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(bundle)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _function_code_key() -> str:
    """The copy function's code asset key (its hash) in a stack of the function alone, synthesized without bundling."""
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "Bytecode")
    CopyFunction(
        stack,
        "Function",
        environment={},
        key=kms.Key(stack, "Key"),
        log_retention_days=30,
        reserved_concurrency=None,
        service="bytecode",
    )
    (function,) = Template.from_stack(stack).find_resources("AWS::Lambda::Function").values()
    return str(function["Properties"]["Code"]["S3Key"])


def test_bytecode_under_the_source_does_not_change_the_assets_hash() -> None:
    """The asset's hash names the function's published version (its logical id) and the asset's key: bytecode a test
    run or an editor left under lambda/ must not change it from one machine to the next (mutation: without the
    asset's exclusions this fails)."""
    before = _function_code_key()
    stray = [LAMBDA_SOURCE / "copier" / "__pycache__" / "stray-test.cpython-311.pyc", LAMBDA_SOURCE / "stray-test.pyc"]
    created_directory = not stray[0].parent.exists()
    try:
        stray[0].parent.mkdir(exist_ok=True)
        for path in stray:
            path.write_bytes(b"\x00stray bytecode")
        assert _function_code_key() == before
    finally:
        for path in stray:
            path.unlink(missing_ok=True)
        if created_directory:
            stray[0].parent.rmdir()
