#!/usr/bin/env bash
# Creates/updates the project's Python environment (.venv) from uv.lock, reproducibly.
#   scripts/python-env.sh [extra uv sync args]
# The dev/CI environment holds every group (services, dev and training, which brings torch,
# ElegantRL and FinRL): the training tests need them, and syncing one group at a time would make
# `make demo` and `make test` uninstall each other's packages. The images install only their own
# group (deploy/docker), and tests/deploy/test_docker.py proves the services import without torch.
# uv itself is installed into .local/tools when it is not on PATH, pinned to a known version.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
UV_VERSION="0.13.9"
say() { printf '[python] %s\n' "$*"; }

PY="$(command -v python3.11 || command -v python3 || true)"
[ -n "$PY" ] || { echo "[python] ERROR: Python 3.11 is required (python3.11 not found)" >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
  || { echo "[python] ERROR: Python 3.11 is required, $("$PY" --version) found" >&2; exit 1; }
# The real interpreter, not a version-manager shim: uv recreates .venv when the path it is given
# differs from the one the environment was made with.
PY="$("$PY" -c 'import sys; print(sys.executable)')"

UV="$(command -v uv || true)"
if [ -z "$UV" ]; then
  UV="$REPO/.local/tools/bin/uv"
  if [ ! -x "$UV" ]; then
    say "installing uv $UV_VERSION into .local/tools"
    "$PY" -m venv "$REPO/.local/tools"
    "$REPO/.local/tools/bin/pip" install -q "uv==$UV_VERSION"
  fi
fi
export UV_PYTHON_DOWNLOADS=never
say "syncing .venv from uv.lock (groups: services, dev, training $*); torch is a large first download"
"$UV" sync --frozen --python "$PY" --group training "$@" 2>&1 | grep -vE '^(Resolved|Audited|Checked) ' || true
[ -x "$REPO/.venv/bin/python" ] || { echo "[python] ERROR: .venv was not created" >&2; exit 1; }
say "ready: $("$REPO/.venv/bin/python" --version)"

# Bytecode, written once here rather than by each process: uv does not compile what it installs,
# and where PYTHONDONTWRITEBYTECODE is set (this machine, CI) nothing ever caches it, so every
# service process compiled SQLAlchemy, pandas, pydantic ... from source at start-up (the executor
# took 5.3 s to import instead of 1.6 s; tests and the demo start hundreds of services). The
# libraries are compiled again only when uv.lock (or the sync arguments) changed; the project's own sources every time
# (compileall skips what is up to date; a stale .pyc is never used, Python checks the source's mtime).
STAMP="$REPO/.venv/.bytecode-$( (cat uv.lock; echo "$*") | sha256sum | cut -c1-16)"
SITE="$("$REPO/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ ! -e "$STAMP" ]; then
  say "compiling the libraries' bytecode (once per uv.lock, ~1 min on 2 cores)"
  # some packages ship deliberately invalid test files: their errors are expected and ignored
  "$REPO/.venv/bin/python" -m compileall -q -j 0 "$SITE" >/dev/null 2>&1 || true
  rm -f "$REPO"/.venv/.bytecode-* && touch "$STAMP"
fi
"$REPO/.venv/bin/python" -m compileall -q -j 0 config.py common ops producers tick_emitter \
  strategy_consumers meta_consumer executor training bridge \
  || { echo "[python] ERROR: the project's sources do not compile (see above)" >&2; exit 1; }
