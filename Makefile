# One target per habit. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DATASTORE := 0123456789abcdef0123456789abcdef
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: setup demo test test-lambda-py313 test-scale lint synth deploy diagram lock bench bench-scale bench-reads bench-lanes clean upgrade-fixtures

setup: $(VENV)/.installed $(VENV)/bin/healthimaging-copy

$(VENV)/.installed: requirements.txt requirements-dev.txt lambda/requirements.txt infra/function-constraints.txt requirements-checkov.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# The installed package's dependencies at this environment's versions, as wheels: tests/test_package.py
	@# installs the built wheel into a fresh venv from here, offline.
	$(PY) -m pip freeze > $(VENV)/frozen.txt
	$(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > $(VENV)/package-requirements.txt
	$(PY) -m pip download --quiet --disable-pip-version-check --dest $(VENV)/wheelhouse -r $(VENV)/package-requirements.txt -c $(VENV)/frozen.txt
	@# checkov in a venv of its own: it pins boto3 to a version the dev environment cannot share.
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

# The operator CLI of this checkout, as the installed package's console script (`. .venv/bin/activate`, or
# .venv/bin/healthimaging-copy): it runs ops/cli.py from here, so it is never a stale copy.
$(VENV)/bin/healthimaging-copy: $(VENV)/.installed
	printf '#!/bin/sh\nPYTHONPATH="%s$${PYTHONPATH:+:$$PYTHONPATH}" exec "%s" -m ops.cli "$$@"\n' "$(CURDIR)" "$(CURDIR)/$(PY)" > $@
	chmod +x $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

demo: setup  ## the main job, offline, every path: import event, by hand, backfill, throttled, conflict, force
	$(PY) -m offline.demo

test: setup  ## every test: unit, emulator, workflow paths, faults, CDK assertions, cdk-nag, cfn-lint, checkov, statelint
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; exit $$status

# Scale runs, too long for every CI run: the backfill's 10,000-image-set target, end to end
# (tests/test_backfill_scale.py; `make test` runs it on 1,000). Last measured: 33 min on this 2-core machine.
# Run it when the backfill, the journal, the dispatcher or the local runner changes. Then the metadata
# decisions on 55 MB CT documents (90,000 instances; `make test` runs 10,000): 1.5 min, 1.8 GB of RSS.
test-scale: setup
	@BACKFILL_TEST_IMAGE_SETS=10000 $(PY) -m pytest -q tests/test_backfill_scale.py
	@METADATA_TEST_CT_INSTANCES=90000 $(PY) -m pytest -q tests/test_large_metadata.py

# The function's own tests on Python 3.13, the Lambda runtime's version (pyenv's, when present).
PY313 ?= $(shell command -v pyenv >/dev/null 2>&1 && ls -d $$(pyenv root)/versions/3.13*/bin/python3 2>/dev/null | tail -1)
test-lambda-py313:
	@if [ -z "$(PY313)" ]; then echo "no Python 3.13 found (pyenv): skipped"; exit 0; fi; \
	test -x .venv313/bin/python || $(PY313) -m venv .venv313; \
	.venv313/bin/python -m pip install --quiet --disable-pip-version-check -r lambda/requirements.txt -c infra/function-constraints.txt \
	  $$(grep -E '^(boto3|moto|pytest|hypothesis)' requirements-dev.txt); \
	.venv313/bin/python -m pytest -p no:cacheprovider tests/test_lambda_*.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

synth: setup node_modules/.installed  ## the CDK CLI, offline (bundles the locked wheels with pip), then the bundle's size
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --no-notices -c datastoreId=$(DEMO_DATASTORE) --quiet
	$(PY) -m infra.function_bundle size cdk.out

# Deploys with this checkout's environment and the pinned CDK CLI, to the account and Region of the current AWS
# credentials (bootstrapped once: docs/deploy.md). Never run by CI. Settings: cdk.json, DATASTORE_ID, and any
# other `-c key=value` in CONTEXT; STACKS names stacks of the `stacks` setting (default: every stack).
DATASTORE_ID ?=
CONTEXT ?=
STACKS ?= --all
deploy: setup node_modules/.installed  ## make deploy DATASTORE_ID=<id> [CONTEXT="-c copyPolicy=merge-into-primary"]
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk deploy --no-notices $(if $(DATASTORE_ID),-c datastoreId=$(DATASTORE_ID)) $(CONTEXT) $(STACKS)

diagram: setup  ## redraw docs/design.md's state machine picture from the synthesized definition
	$(PY) -m infra.workflow_diagram

lock: setup  ## after changing lambda/requirements.txt: re-resolve the function bundle's wheels with hashes
	$(PY) -m infra.function_bundle lock

# The previous release's template and records, written by that release's own code (tests/test_upgrade*.py read
# them). Run once per release, with RELEASE the release the next one upgrades from. Releases are named by their
# commit here (a clone has no tags): add each release's line when it is cut.
RELEASE_COMMITS := \
	v0.1.0=828e6c339a65b75e228fb882b784bc2f44bf2725 \
	v0.2.0=cbdcb93acdcd08560aea4aaa0f4bca984bfdfee0
RELEASE ?= v0.2.0
RELEASE_COMMIT = $(patsubst $(RELEASE)=%,%,$(filter $(RELEASE)=%,$(RELEASE_COMMITS)))
upgrade-fixtures: setup
	@test -n "$(RELEASE_COMMIT)" || { echo "RELEASE=$(RELEASE) is none of: $(RELEASE_COMMITS)"; exit 1; }
	@rm -rf .upgrade-source && mkdir .upgrade-source
	git archive $(RELEASE_COMMIT) | tar -x -C .upgrade-source
	$(PY) tests/upgrade_fixtures.py --release-source .upgrade-source --out tests/fixtures/$(RELEASE)
	@rm -rf .upgrade-source

# Each benchmark keeps its print-out in benchmarks/results/ (docs/figures.md quotes them; tests/test_figures.py
# checks it does): bench and the bench-* targets below run every command docs/figures.md names. About 10 minutes.
bench: setup
	$(PY) -m benchmarks.handler_import --runs 15
	$(PY) -m benchmarks.metadata
	$(PY) -m benchmarks.burst --breakdown
	$(PY) -m benchmarks.burst --quota 10

# docs/figures.md's scale table (4 quotas x 4 bursts and a 1M backfill), the shared-quota scenarios and the drain
# with no completion events (about 25 minutes here).
bench-scale: setup
	$(PY) -m benchmarks.scale --table
	$(PY) -m benchmarks.scale --shared
	$(PY) -m benchmarks.scale --quota 10 --drop-events 1.0

# docs/figures.md's read budgets table (every HealthImaging operation against its quota: 10 and 40 TPS, default and
# raised read quotas, snapshot and merge-into-primary) and a merge-into-primary burst's calls per copy on the emulator.
bench-reads: setup
	$(PY) -m benchmarks.scale --reads
	$(PY) -m benchmarks.burst --imports 200 --policy merge-into-primary --breakdown

# docs/figures.md's lanes table (new imports while a 1M backfill waits, at each quota) and how fast entries of 0.2.0
# join the lanes after an upgrade.
bench-lanes: setup
	$(PY) -m benchmarks.scale --lanes
	$(PY) -m benchmarks.legacy_labels

clean:
	rm -rf $(VENV) .venv313 node_modules cdk.out .pytest_cache .ruff_cache .mypy_cache .hypothesis
