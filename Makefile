# Cornjacket: `make run` starts the platform, `make test` runs the tests. `make help` lists all.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (first run takes a minute) ..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev,bench]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP) ## create the virtualenv and install everything (idempotent)

node_modules/.installed: package.json
	@npm install --silent --no-audit --no-fund && touch $@

run: setup ## start the whole platform locally (embedded PostgreSQL, broker, Envoy, services)
	@$(VENV)/bin/cornjacket up

sdk/typescript/node_modules/.installed: sdk/typescript/package.json sdk/typescript/package-lock.json
	@cd sdk/typescript && npm ci --silent --no-audit --no-fund && touch node_modules/.installed

sdk-ts: sdk/typescript/node_modules/.installed ## build the TypeScript SDK (sdk/typescript) from gen/typescript
	@cd sdk/typescript && npm run --silent build

# Each checkout keeps its test files in its own .pytest-tmp: pytest's shared default
# (/tmp/pytest-of-$USER) is pruned by every run, so two suites running at once (two clones)
# deleted each other's PostgreSQL data mid-run.
test: setup sdk-ts ## run unit, component and end-to-end tests against real parts
	@command -v $${CJ_CHROMIUM:-chromium} >/dev/null || echo "NOTE: no Chromium: the console's browser tests (tests/e2e/test_console.py) will be SKIPPED (apt-get install -y chromium)"
	@$(PY) -m pytest -q --basetemp=.pytest-tmp $(PYTEST_ARGS)

test-unit: setup ## only the fast unit tests
	@$(PY) -m pytest -q tests/unit

bench: setup ## every feature on, scenarios at fractions of this run's ceilings, PASS/FAIL per issue 20 target (BENCH_ARGS=--help lists the scenarios)
	@$(PY) -m bench $(BENCH_ARGS)

bench-mqtt: setup ## only the MQTT scenarios: max rate, and 0.12 x C msg/s from 200 devices (C: its stated default)
	@$(PY) -m bench --skip-ceilings --only mqtt-max mqtt-0.12C $(BENCH_ARGS)

bench-replay: setup ## rebuild projections from a 100k-event store and report the rate
	@$(PY) -m bench.replay $(BENCH_ARGS)

bench-tsdb: setup ## time series: writer points/s vs P, series reads at 0.03 x C, bytes per point
	@$(PY) -m bench.tsdb $(BENCH_ARGS)

bench-soak: setup ## the benchmark plus a 10-minute soak at 0.25 x C (issue 20 target 6)
	@$(PY) -m bench --soak 600 $(BENCH_ARGS)

bench-ai: setup ## anomaly detection quality: labelled streams, service model vs rolling z-score and river (issue 18)
	@$(PY) -m bench.ai_quality $(BENCH_ARGS)

bench-ai-speed: setup ## inference speed: readings/s at 1.0 x U over 1,000 devices, accepted -> ai.anomaly p50/p99 at 0.12 x C
	@$(PY) -m bench.ai_speed $(BENCH_ARGS)

bench-actions: setup ## webhook deliveries/s and event->webhook latency p50/p99 (BENCH_ARGS=--help)
	@$(PY) -m bench.actions $(BENCH_ARGS)

console/node_modules/.installed: console/package.json console/package-lock.json
	@cd console && npm ci --silent --no-audit --no-fund && touch node_modules/.installed

gen: setup node_modules/.installed console/node_modules/.installed ## regenerate gen/ (Python and TypeScript stubs, Envoy descriptor set, the console bundle) from proto/
	@$(PY) scripts/gen.py

gen-check: gen ## fail if gen/ differs from what proto/ generates
	@git add -N gen && git diff --exit-code --stat -- gen || (echo "gen/ is stale: run 'make gen' and commit" && exit 1)

buf-lint: node_modules/.installed ## lint the protos with buf
	@npx --no-install buf lint

# The API as released: a buf image of the protos at tag v0.1.0 (issue 2's landing), kept in
# the repository because CI's clean clone carries no tags. `make api-release VERSION=vX.Y.Z`
# snapshots the current protos on a release; then point RELEASED_API at the new image.
RELEASED_API ?= api/v0.1.0.binpb
buf-breaking: node_modules/.installed ## fail on breaking proto changes against the last released API image
	@npx --no-install buf breaking --against '$(RELEASED_API)'

api-release: node_modules/.installed ## snapshot the protos as the released API image api/$(VERSION).binpb
	@test -n "$(VERSION)" || (echo "usage: make api-release VERSION=v0.2.0" && exit 2)
	@npx --no-install buf build -o api/$(VERSION).binpb && echo "wrote api/$(VERSION).binpb"


lint: setup buf-lint buf-breaking ## ruff (lint + format check), mypy, import rules, bandit, buf lint and breaking
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy services tests scripts bench sdk
	@$(VENV)/bin/lint-imports
	@$(VENV)/bin/bandit -q -c pyproject.toml -r services
	@if command -v terraform >/dev/null; then env -u TF_CLI_CONFIG_FILE terraform fmt -check -recursive deploy; \
	else echo "terraform fmt: skipped (no terraform on PATH; it is not on PyPI, npm or Debian)"; fi

format: setup ## apply ruff's formatting and safe fixes
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

clean-data: ## delete the local stack's data (PostgreSQL data, logs)
	rm -rf .cornjacket

.PHONY: help setup run test sdk-ts buf-breaking api-release test-unit bench bench-mqtt bench-replay bench-tsdb bench-soak bench-ai-speed bench-actions gen gen-check buf-lint lint format clean-data
