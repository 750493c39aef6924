#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, starts Kafka and Postgres, replays the
# bundled real BTC data through every service (paper trading), writes out/demo/report.md, then
# serves the bridge on that run so the JavaFX client can show it (Ctrl-C stops the bridge).
#   DEMO_DAYS=90     days of data to replay (default 90)
#   DEMO_SERVE=0     do not start the bridge at the end
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

if [ "${DEMO_SERVE:-1}" = "1" ]; then
  ns="$(sed -n 's/.*namespace `\([^`]*\)`.*/\1/p' out/demo/report.md | head -n1)"
  token_file="$REPO/.local/demo-operator-token"
  if [ ! -s "$token_file" ]; then
    mkdir -p "$REPO/.local"
    (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))' >"$token_file")
  fi
  step "Bridge on the demo run (namespace $ns) at http://127.0.0.1:8080"
  cat <<MSG
Start the desktop client in another terminal (needs a display):
  cd gui-java && mvn -q javafx:run -Dbridge.url=http://127.0.0.1:8080 -Dbridge.token="\$(cat $token_file)" -Dbridge.namespace=$ns
The operator token is in $token_file (not printed). Ctrl-C stops the bridge.
MSG
  BTCMETA_BRIDGE_OPERATOR_TOKENS="[\"demo:$(cat "$token_file")\"]" exec .venv/bin/python -m bridge run --port 8080 --namespace "$ns"
fi
