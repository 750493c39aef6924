#!/usr/bin/env bash
# TimescaleDB for the local PostgreSQL cluster, built once from the vendored source
# (../shared/vendor/timescaledb-<version>.tar.gz: Apache-2.0 core plus the Timescale License `tsl/`
# part, which holds compression and the retention/compression policies).
#
# No Debian package of TimescaleDB exists for this PostgreSQL, so it is compiled with cmake against
# the server headers of Debian's postgresql-server-dev-<major>. The build is cached outside the clone
# under $BTCMETA_CACHE_DIR (default ~/.cache/btcmeta)/timescaledb-<version>-pg<major>: a re-run only
# checks that the installed files equal the cached ones, a fresh machine builds from scratch.
#
# Where the files go: as root, into PostgreSQL's own lib and extension directories (what `make
# install` does). Without write access there (PostgreSQL 15 looks for extension control files only in
# its share directory), into a private copy of the PostgreSQL installation in the cache: the server
# finds its share and lib directories relative to its own binary, so a copied tree plus TimescaleDB is
# a complete server, and infra/dev.sh runs the cluster from it (`bindir` below says which).
#
#   infra/timescale.sh [ensure]   build if needed and install (idempotent; progress on stderr)
#   infra/timescale.sh bindir     print the PostgreSQL bin directory that has TimescaleDB installed
#   infra/timescale.sh status     say what is built and installed where
#
# Environment: BTCMETA_TIMESCALE_TARBALL (default ../shared/vendor/timescaledb-2.23.1.tar.gz),
# BTCMETA_CACHE_DIR, BTCMETA_PG_MAJOR (default: the newest /usr/lib/postgresql/*), BTCMETA_BUILD_JOBS.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TS_VERSION="2.23.1"
TARBALL="${BTCMETA_TIMESCALE_TARBALL:-$REPO/../shared/vendor/timescaledb-$TS_VERSION.tar.gz}"
CACHE_ROOT="${BTCMETA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/btcmeta}"
JOBS="${BTCMETA_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"

say() { printf '[timescale] %s\n' "$*" >&2; }
die() { printf '[timescale] ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
  # Debian packages, as infra/dev.sh installs its own: root runs apt-get, an ordinary user with
  # password-less sudo runs it through sudo, anyone else is told the command. The lock timeout lets
  # a concurrent apt run on the machine finish instead of failing this one.
  local -a as=()
  if ! is_root; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as=(sudo -n); else
      die "missing: $*. Install it (Debian/Ubuntu: sudo apt-get install $*) and run again."
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing: $* (and no apt-get on this machine to install it)"
  say "installing $* with apt-get"
  local -a opts=(-o DPkg::Lock::Timeout=600 -qq)
  if ! apt-cache show "$1" >/dev/null 2>&1; then "${as[@]}" apt-get "${opts[@]}" update >/dev/null; fi
  "${as[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

pg_major() {
  if [ -n "${BTCMETA_PG_MAJOR:-}" ]; then echo "$BTCMETA_PG_MAJOR"; return; fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { basename "$(dirname "$d")"; return; }
  done
  die "no PostgreSQL server found under /usr/lib/postgresql (run infra/dev.sh deps first)"
}

MAJOR="$(pg_major)"
SYS_BIN="/usr/lib/postgresql/$MAJOR/bin"
PG_CONFIG="$SYS_BIN/pg_config"
CACHE="$CACHE_ROOT/timescaledb-$TS_VERSION-pg$MAJOR"
STAMP="$CACHE/.built"
STAGE="$CACHE/stage"            # `make install DESTDIR=$STAGE`: the files to install, by absolute path
OVERLAY="$CACHE/pg"             # private PostgreSQL tree, only when the system one is not writable

pgc() { "$PG_CONFIG" "--$1"; }

build_key() {
  # What the cached build depends on: the source (by checksum) and the server's major version.
  printf 'timescaledb %s sha256 %s postgresql %s\n' "$TS_VERSION" "$(sha256sum "$TARBALL" | cut -d' ' -f1)" "$MAJOR"
}

deps() {
  [ -f "$TARBALL" ] || die "TimescaleDB source not found: $TARBALL (set BTCMETA_TIMESCALE_TARBALL)"
  [ -x "$PG_CONFIG" ] || die "$PG_CONFIG not found (PostgreSQL $MAJOR client/server packages missing)"
  if [ ! -f "$(pgc includedir-server)/postgres.h" ]; then apt_install "postgresql-server-dev-$MAJOR"; fi
  [ -f "$(pgc includedir-server)/postgres.h" ] || die "PostgreSQL $MAJOR server headers still missing"
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  { command -v gcc >/dev/null 2>&1 && command -v make >/dev/null 2>&1; } || missing+=(build-essential)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

build() {
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(build_key)" ] && [ -d "$STAGE" ]; then
    say "cached build found: $CACHE"
    return
  fi
  deps
  say "building TimescaleDB $TS_VERSION for PostgreSQL $MAJOR ($(pgc version)) in $CACHE with $JOBS jobs"
  local t0=$SECONDS
  rm -rf "$CACHE/src" "$CACHE/build" "$STAGE" "$STAMP"
  mkdir -p "$CACHE/src"
  tar xzf "$TARBALL" -C "$CACHE/src" --strip-components=1
  say "configuring (cmake)"
  # Tests, linters and the downgrade script need a git checkout and extra tools; OpenSSL only
  # serves telemetry, which stays off.
  (cd "$CACHE/src" && cmake -S . -B "$CACHE/build" -DPG_CONFIG="$PG_CONFIG" -DCMAKE_BUILD_TYPE=Release \
      -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DLINTER=OFF \
      -DGENERATE_DOWNGRADE_SCRIPT=OFF -DUSE_OPENSSL=OFF -DSEND_TELEMETRY_DEFAULT=OFF) \
    >"$CACHE/cmake.log" 2>&1 || { tail -n 40 "$CACHE/cmake.log" >&2; die "cmake failed (log: $CACHE/cmake.log)"; }
  say "compiling (make -j$JOBS; log: $CACHE/make.log)"
  make -C "$CACHE/build" -j"$JOBS" >"$CACHE/make.log" 2>&1 \
    || { tail -n 40 "$CACHE/make.log" >&2; die "make failed (log: $CACHE/make.log)"; }
  make -C "$CACHE/build" install DESTDIR="$STAGE" >"$CACHE/install.log" 2>&1 \
    || { tail -n 40 "$CACHE/install.log" >&2; die "make install into the cache failed"; }
  [ -f "$STAGE$(pgc pkglibdir)/timescaledb-tsl-$TS_VERSION.so" ] \
    || die "the build has no Timescale License module (timescaledb-tsl-$TS_VERSION.so): compression would be missing"
  build_key >"$STAMP"
  rm -rf "$CACHE/src" "$CACHE/build"  # ~120 MB; the staged files are all a re-run needs
  say "built in $((SECONDS - t0)) s"
}

# Staged files that <root><their absolute path> lacks or holds in another version, one a line.
stale_files() {
  local root="$1" f
  while IFS= read -r -d '' f; do
    cmp -s "$f" "$root${f#"$STAGE"}" || printf '%s\n' "${f#"$STAGE"}"
  done < <(find "$STAGE" -type f -print0)
}

# Copies the stale files into <root>; each lands whole (copy, then rename) and prints its count.
install_into() {
  local root="$1" rel n=0
  while IFS= read -r rel; do
    mkdir -p "$(dirname "$root$rel")"
    install -m 0644 "$STAGE$rel" "$root$rel.tmp.$$" && mv -f "$root$rel.tmp.$$" "$root$rel"
    if [[ "$rel" == *.so ]]; then chmod 0755 "$root$rel"; fi
    n=$((n + 1))
  done < <(stale_files "$root")
  echo "$n"
}

system_writable() { [ -w "$(pgc pkglibdir)" ] && [ -w "$(pgc sharedir)/extension" ]; }

overlay() {
  # A private copy of PostgreSQL <major> (bin, lib, share: ~50 MB) that TimescaleDB is added to.
  # Its layout mirrors Debian's, so the copied postgres binary resolves share/lib inside the copy.
  local lib share
  lib="$(dirname "$SYS_BIN")"; share="$(pgc sharedir)"
  if [ ! -f "$OVERLAY/.complete" ] || [ "$SYS_BIN/postgres" -nt "$OVERLAY/.complete" ]; then
    say "copying PostgreSQL $MAJOR into $OVERLAY (the system directories are not writable)"
    rm -rf "$OVERLAY"; mkdir -p "$OVERLAY$lib" "$OVERLAY$share"
    cp -a "$lib/." "$OVERLAY$lib/"; cp -a "$share/." "$OVERLAY$share/"
    touch "$OVERLAY/.complete"
  fi
  echo "$OVERLAY"
}

system_current() { [ -z "$(stale_files "")" ]; }

ensure() {
  # One build or install at a time per cache: a test run and a shell may both start the infra.
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE.lock"
  flock -n 9 || { say "waiting for another infra/timescale.sh to finish ($CACHE.lock)"; flock 9; }
  build
  local root n
  if system_current; then
    say "TimescaleDB $TS_VERSION already installed in the system PostgreSQL $MAJOR directories"; return
  fi
  if system_writable; then root=""; else root="$(overlay)"; fi
  n="$(install_into "$root")"
  if [ "$n" -gt 0 ]; then say "installed $n files into ${root:-the system PostgreSQL $MAJOR directories}"
  else say "TimescaleDB $TS_VERSION already installed in $root"; fi
}

bindir() {
  # The system's binaries when its directories hold this very build, else the private copy's.
  if [ -f "$STAMP" ] && system_current; then
    echo "$SYS_BIN"
  elif [ -f "$STAMP" ] && [ -f "$OVERLAY/.complete" ] && [ -z "$(stale_files "$OVERLAY")" ]; then
    echo "$OVERLAY$SYS_BIN"
  else
    die "TimescaleDB $TS_VERSION is not installed (run infra/timescale.sh)"
  fi
}

status() {
  if [ -f "$STAMP" ]; then say "built: $CACHE ($(cat "$STAMP"))"; else say "not built yet (cache: $CACHE)"; fi
  if ( bindir >/dev/null 2>&1 ); then say "installed: PostgreSQL binaries with TimescaleDB in $(bindir)"; else say "not installed"; fi
}

case "${1:-ensure}" in
  ensure) ensure ;;
  bindir) bindir ;;
  status) status ;;
  *) echo "usage: infra/timescale.sh [ensure|bindir|status]" >&2; exit 2 ;;
esac
