# One entry point for every set-up and run step. `make help` lists the targets.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: help demo train test test-exhaustive test-chaos env infra-up infra-down infra-status infra-reset migrate topics lint bench

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

demo: ## Main job: full pipeline on the bundled real data (paper trading), writes out/demo/
	@scripts/demo.sh

train: env ## Offline training: every step once on the bundled data (agents, results DB, report in out/training)
	@$(PY) -m training all

test: ## All tests on real Kafka + Postgres (installs and starts what they need)
	@scripts/test.sh

test-exhaustive: ## Only the full-scale parity proofs: every bar of every strategy, 90-day replays (~20 min; not in make test)
	@scripts/python-env.sh && infra/dev.sh start && .venv/bin/python -m pytest -m exhaustive tests/unit/strategies tests/integration/test_replay_backtest.py

test-chaos: ## Only the whole-pipeline chaos suite (~7 min; freezes the local Kafka/Postgres; not in make test)
	@scripts/python-env.sh && infra/dev.sh start && .venv/bin/python -m pytest -m chaos tests/integration

env: ## Create/update the Python environment from uv.lock
	@scripts/python-env.sh

infra-up: ## Start Kafka (KRaft) and PostgreSQL on 127.0.0.1
	@infra/dev.sh start

infra-down: ## Stop Kafka and PostgreSQL
	@infra/dev.sh stop

infra-status: ## Show what runs where
	@infra/dev.sh status

infra-reset: ## Stop and delete all local Kafka/Postgres state (.local)
	@infra/dev.sh reset

migrate: env infra-up ## Apply database migrations
	@$(PY) -m ops migrate

topics: env infra-up ## Create Kafka topics (idempotent)
	@$(PY) -m ops topics

lint: env ## the pre-commit hooks: ruff check, ruff format --check, mypy (--strict on common and executor)
	@.venv/bin/pre-commit run --all-files

bench: env migrate topics ## Run every benchmark under bench/ (results in docs/BENCHMARKS.md)
	@for b in bench/bench_*.py; do echo "==> $$b"; $(PY) $$b || exit 1; done; $(PY) bench/collect.py
