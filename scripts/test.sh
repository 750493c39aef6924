#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what is missing, starts real Kafka and Postgres,
# lints, migrates, then runs the whole pytest suite (unit + integration + slow) and the Java build.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
step() { printf '\n==> %s\n' "$*"; }

step "Python environment"
scripts/python-env.sh
step "Infrastructure (Kafka, PostgreSQL)"
infra/dev.sh start
step "Lint and format (ruff), types (mypy; --strict on common and executor; the benchmarks too): the pre-commit hooks"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy config.py common ops producers tick_emitter strategy_consumers meta_consumer executor training bridge
.venv/bin/mypy --strict common executor
.venv/bin/mypy --explicit-package-bases bench/*.py
step "Migrations and topics (live namespace)"
.venv/bin/python -m ops migrate
.venv/bin/python -m ops topics
step "Deployment tools (helm, actionlint, kubernetes-validate; built once into .local/tools)"
deploy/tools/install-tools.sh >/dev/null
step "Java client build and headless tests (gui-java, Maven)"
(cd gui-java && mvn -q -B -Dstyle.color=never test)
step "pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi
exit "$rc"
