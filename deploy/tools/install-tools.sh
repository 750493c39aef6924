#!/usr/bin/env bash
# Installs the deployment tools the tests and CI use, pinned, into .local/tools:
#   bin/helm          (helm.sh/helm/v3)             lint and render the chart
#   bin/actionlint    (github.com/rhysd/actionlint)  check the GitHub Actions workflows
#   kubernetes-validate/  a Python venv with kubernetes-validate (offline Kubernetes JSON schemas),
#                     from the hash-pinned deploy/tools/requirements-validate.txt; it runs
#                     deploy/tools/validate-manifests.py
# Go tools are built from source with `go install` through the Go module proxy (no prebuilt binary
# downloads: only package registries are reachable from dev and CI machines). Idempotent: a tool
# whose stamp matches its pin is left alone, so a second run takes well under a second.
#   deploy/tools/install-tools.sh          install what is missing, print the bin folder
#   deploy/tools/install-tools.sh --check  exit 1 when something is missing (installs nothing)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${BTCMETA_TOOLS_DIR:-$REPO/.local/tools}"
BIN="$TOOLS/bin"
KV_VENV="$TOOLS/kubernetes-validate"
KV_REQS="$REPO/deploy/tools/requirements-validate.txt"

HELM_VERSION="v3.19.5"
ACTIONLINT_VERSION="v1.7.12"

# helm's own release build stamps its version and the default Kubernetes version (used by
# `helm template` without --kube-version: 1.34 for helm 3.19, the client-go it is built with).
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  HELM_LDFLAGS+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=34"
done

# name|module path of the main package|version|linker flags
GO_TOOLS=(
  "helm|helm.sh/helm/v3/cmd/helm|$HELM_VERSION|$HELM_LDFLAGS"
  "actionlint|github.com/rhysd/actionlint/cmd/actionlint|$ACTIONLINT_VERSION|-s -w"
)

say() { printf '[tools] %s\n' "$*" >&2; }

installed() {  # name stamp -> 0 when the binary and a matching stamp (version + flags) are there
  [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]
}

kv_pin() {  # the requirements file's checksum: the venv is rebuilt when the pins change
  sha256sum "$KV_REQS" | cut -c1-16
}

kv_installed() {
  [ -x "$KV_VENV/bin/python" ] && [ "$(cat "$KV_VENV/.pin" 2>/dev/null)" = "$(kv_pin)" ]
}

if [ "${1:-}" = "--check" ]; then
  for t in "${GO_TOOLS[@]}"; do
    IFS='|' read -r name _ version ldflags <<<"$t"
    installed "$name" "$version $ldflags" || { say "$name $version missing"; exit 1; }
  done
  kv_installed || { say "kubernetes-validate environment missing"; exit 1; }
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN"
# One installer at a time (several test sessions may start together on one machine).
exec 9>"$BIN/.install.lock"
flock 9

for t in "${GO_TOOLS[@]}"; do
  IFS='|' read -r name pkg version ldflags <<<"$t"
  if installed "$name" "$version $ldflags"; then
    continue
  fi
  command -v go >/dev/null || { say "ERROR: Go is required to build $name (apt-get install golang-go or go.dev)"; exit 1; }
  say "building $name $version with $(go version | awk '{print $3}') (first time only: a few minutes)"
  start=$(date +%s)
  tmp="$(mktemp -d)"
  # GOTOOLCHAIN=local: never download a Go toolchain; CGO off: a static binary.
  GOBIN="$tmp" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -trimpath" \
    go install -ldflags "$ldflags" "$pkg@$version"
  mv -f "$tmp/$name" "$BIN/$name"
  rmdir "$tmp"
  echo "$version $ldflags" >"$BIN/.$name.version"
  say "$name $version ready in $(( $(date +%s) - start ))s"
done

if ! kv_installed; then
  PY="$(command -v python3.11 || command -v python3 || true)"
  [ -n "$PY" ] || { say "ERROR: Python 3 is required for kubernetes-validate"; exit 1; }
  say "creating the kubernetes-validate environment (pinned, hash-checked)"
  start=$(date +%s)
  rm -rf "$KV_VENV"
  "$PY" -m venv "$KV_VENV"
  "$KV_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
    -r "$KV_REQS"
  "$KV_VENV/bin/python" -c "import kubernetes_validate.utils"
  kv_pin >"$KV_VENV/.pin"
  say "kubernetes-validate ready in $(( $(date +%s) - start ))s"
fi
echo "$BIN"
