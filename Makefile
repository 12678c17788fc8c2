# One target per habit. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DATASTORE := 0123456789abcdef0123456789abcdef
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: setup demo test test-lambda-py313 lint synth bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt lambda/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

demo: setup  ## the main job, offline: import event -> snapshot, merge with conflict, forced merge
	$(PY) -m offline.demo

test: setup  ## every test: unit, emulator, workflow paths, faults, CDK assertions, cdk-nag, cfn-lint, statelint
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; exit $$status

# The function's own tests on Python 3.13, the Lambda runtime's version (pyenv's, when present).
PY313 ?= $(shell command -v pyenv >/dev/null 2>&1 && ls -d $$(pyenv root)/versions/3.13*/bin/python3 2>/dev/null | tail -1)
test-lambda-py313:
	@if [ -z "$(PY313)" ]; then echo "no Python 3.13 found (pyenv): skipped"; exit 0; fi; \
	test -x .venv313/bin/python || $(PY313) -m venv .venv313; \
	.venv313/bin/python -m pip install --quiet --disable-pip-version-check -r lambda/requirements.txt \
	  $$(grep -E '^(boto3|moto|pytest|hypothesis)' requirements-dev.txt); \
	.venv313/bin/python -m pytest -p no:cacheprovider tests/test_lambda_*.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

synth: setup node_modules/.installed  ## the CDK CLI, offline (bundles Powertools with pip)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --no-notices -c datastoreId=$(DEMO_DATASTORE) --quiet

bench: setup
	$(PY) -m benchmarks.handler_import
	$(PY) -m benchmarks.burst
	$(PY) -m benchmarks.scale

clean:
	rm -rf $(VENV) .venv313 node_modules cdk.out .pytest_cache .ruff_cache .mypy_cache .hypothesis
