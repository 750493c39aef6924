#!/usr/bin/env bash
# Build bench/.venv-peers: vectorbt, NautilusTrader and freqtrade for bench/bench_peers.py.
#
# A separate environment, never the project's .venv: the peers cannot share uv.lock with the
# project (nautilus-trader 1.221, the last release for Python 3.11, caps fsspec below the version
# the training group locks), and `make test` must not carry them. The project's own code runs in it
# from the repo root (the bench puts the root on sys.path), on the same numpy/pandas pins: the
# requirements are compiled with the services group's pins exported from uv.lock.
#
#   bench/peers-env.sh            # create/refresh bench/.venv-peers from bench/peers-requirements.txt
#   bench/peers-env.sh --compile  # re-pin bench/peers-requirements.txt first (needs PyPI)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
uv="${UV:-$root/.local/tools/bin/uv}"
[ -x "$uv" ] || uv="$(command -v uv)"
venv="$root/bench/.venv-peers"
python="${PEERS_PYTHON:-$(readlink -f "$root/.venv/bin/python" 2>/dev/null || echo python3.11)}"

if [ "${1:-}" = "--compile" ]; then
    constraints="$(mktemp)"
    trap 'rm -f "$constraints"' EXIT
    "$uv" export --frozen --only-group services --no-hashes --no-emit-project -o "$constraints" >/dev/null
    "$uv" pip compile --quiet --python-version 3.11 --generate-hashes \
        bench/peers-requirements.in "$constraints" -o bench/peers-requirements.txt
    # The temporary file's name is no part of the pins: keep the header reproducible.
    sed -i "s#-r $constraints#-r uv.lock (services group)#; s#$constraints#uv.lock (services group)#" \
        bench/peers-requirements.txt
fi
[ -x "$venv/bin/python" ] || "$uv" venv --quiet --python "$python" "$venv"
"$uv" pip sync --quiet --python "$venv/bin/python" bench/peers-requirements.txt
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
print("bench/.venv-peers:", ", ".join(f"{p} {md.version(p)}" for p in ("vectorbt", "nautilus_trader", "freqtrade", "numba", "numpy", "pandas")))
PY
