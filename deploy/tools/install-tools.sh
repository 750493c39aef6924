#!/usr/bin/env bash
# Installs the deployment tools the tests and CI use, pinned, into .local/tools/bin:
#   helm        (helm.sh/helm/v3)            lint and render the chart
#   actionlint  (github.com/rhysd/actionlint) check the GitHub Actions workflows
# Built from source with `go install` through the Go module proxy (no prebuilt binary downloads:
# only package registries are reachable from dev and CI machines). Idempotent: a tool whose stamp
# matches the pinned version is left alone, so a second run takes well under a second.
#   deploy/tools/install-tools.sh          install what is missing, print the bin folder
#   deploy/tools/install-tools.sh --check  exit 1 when something is missing (installs nothing)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${BTCMETA_TOOLS_BIN:-$REPO/.local/tools/bin}"

HELM_VERSION="v3.19.5"
ACTIONLINT_VERSION="v1.7.12"

# name|module path of the main package|version
TOOLS=(
  "helm|helm.sh/helm/v3/cmd/helm|$HELM_VERSION"
  "actionlint|github.com/rhysd/actionlint/cmd/actionlint|$ACTIONLINT_VERSION"
)

say() { printf '[tools] %s\n' "$*" >&2; }

installed() {  # name version -> 0 when the binary and a matching stamp are there
  [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]
}

if [ "${1:-}" = "--check" ]; then
  for t in "${TOOLS[@]}"; do
    IFS='|' read -r name _ version <<<"$t"
    installed "$name" "$version" || { say "$name $version missing"; exit 1; }
  done
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN"
# One installer at a time (several test sessions may start together on one machine).
exec 9>"$BIN/.install.lock"
flock 9

for t in "${TOOLS[@]}"; do
  IFS='|' read -r name pkg version <<<"$t"
  if installed "$name" "$version"; then
    continue
  fi
  command -v go >/dev/null || { say "ERROR: Go is required to build $name (apt-get install golang-go or go.dev)"; exit 1; }
  say "building $name $version with $(go version | awk '{print $3}') (first time only: a few minutes)"
  start=$(date +%s)
  tmp="$(mktemp -d)"
  # GOTOOLCHAIN=local: never download a Go toolchain; CGO off: a static binary.
  GOBIN="$tmp" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -trimpath" \
    go install "$pkg@$version"
  mv -f "$tmp/$name" "$BIN/$name"
  rmdir "$tmp"
  echo "$version" >"$BIN/.$name.version"
  say "$name $version ready in $(( $(date +%s) - start ))s"
done
echo "$BIN"
