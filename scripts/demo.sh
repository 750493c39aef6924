#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, starts Kafka and Postgres, replays the
# bundled real BTC data through every service (paper trading), writes out/demo/report.md, then
# serves the bridge on that run so the JavaFX client can show it (Ctrl-C stops the bridge).
#   DEMO_DAYS=90     days of data to replay (default 90)
#   DEMO_SERVE=0     do not start the bridge at the end
#   DEMO_SCREENSHOT=0  do not save the desktop client's screenshot (out/demo/gui-main-window.png;
#                      needs Java 17 + Maven, runs headless, skipped without them)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
step() { printf '\n==> %s\n' "$*"; }

step "Python environment"
scripts/python-env.sh
step "Infrastructure (Kafka, PostgreSQL)"
infra/dev.sh start
step "Migrations and topics"
.venv/bin/python -m ops migrate
.venv/bin/python -m ops topics
step "Pipeline on real data (replay -> strategies -> meta consumer -> executor, paper)"
.venv/bin/python -m ops demo --days "${DEMO_DAYS:-90}" --out out/demo
echo
echo "Result: $REPO/out/demo/report.md (chart: out/demo/pnl.png)"

ns="$(sed -n 's/.*namespace `\([^`]*\)`.*/\1/p' out/demo/report.md | head -n1)"
token_file="$REPO/.local/demo-operator-token"
if [ ! -s "$token_file" ]; then
  mkdir -p "$REPO/.local"
  (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))' >"$token_file")
fi
BTCMETA_BRIDGE__OPERATOR_TOKENS="[\"demo:$(cat "$token_file")\"]"
export BTCMETA_BRIDGE__OPERATOR_TOKENS

if [ "${DEMO_SCREENSHOT:-1}" = "1" ] && command -v mvn >/dev/null && command -v java >/dev/null; then
  step "Desktop client screenshot (headless, TestFX + Monocle) -> out/demo/gui-main-window.png"
  mkdir -p out/demo/logs
  port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  .venv/bin/python -m bridge run --port "$port" --namespace "$ns" >out/demo/logs/bridge-screenshot.log 2>&1 &
  bridge_pid=$!
  .venv/bin/python - "$port" <<'PY' || true
import sys, time, httpx
for _ in range(150):
    try:
        if httpx.get(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(0.2)
PY
  # The TestFX test the integration suite runs; in demo mode it accepts a run without trained
  # models, and still checks every other view against the API
  # before it saves the picture. The token goes through the environment, not the command line.
  if (cd gui-java && BTCMETA_BRIDGE_TOKEN="$(cat "$token_file")" mvn -q -B test -Dtest=LiveBridgeScreenshotTest \
        -Dbridge.demo=true -Dbridge.url="http://127.0.0.1:$port" -Dbridge.namespace="$ns" \
        -Dscreenshot.dir="$REPO/out/demo") >out/demo/logs/gui-screenshot.log 2>&1; then
    echo "Screenshot: $REPO/out/demo/gui-main-window.png"
  else
    echo "WARNING: the client screenshot failed (see out/demo/logs/gui-screenshot.log)" >&2
  fi
  kill "$bridge_pid" 2>/dev/null || true
  wait "$bridge_pid" 2>/dev/null || true
fi

if [ "${DEMO_SERVE:-1}" = "1" ]; then
  step "Bridge on the demo run (namespace $ns) at http://127.0.0.1:8080"
  cat <<MSG
Start the desktop client in another terminal (needs a display):
  cd gui-java && mvn -q javafx:run -Dbridge.url=http://127.0.0.1:8080 -Dbridge.token="\$(cat $token_file)" -Dbridge.namespace=$ns
The operator token is in $token_file (not printed). Ctrl-C stops the bridge.
MSG
  exec .venv/bin/python -m bridge run --port 8080 --namespace "$ns"
fi
