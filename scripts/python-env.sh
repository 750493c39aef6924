#!/usr/bin/env bash
# Creates/updates the project's Python environment (.venv) from uv.lock, reproducibly.
#   scripts/python-env.sh [extra uv sync args]   e.g. --group training for the offline trainer
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
say "syncing .venv from uv.lock (groups: services, dev $*)"
"$UV" sync --frozen --python "$PY" "$@" 2>&1 | grep -vE '^(Resolved|Audited|Checked) ' || true
[ -x "$REPO/.venv/bin/python" ] || { echo "[python] ERROR: .venv was not created" >&2; exit 1; }
say "ready: $("$REPO/.venv/bin/python" --version)"
