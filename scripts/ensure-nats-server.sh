#!/usr/bin/env bash
# Prints the path of a nats-server >= 2.10, installing one into tools/ when none is found.
#
# Order: $NATS_SERVER_BIN, tools/nats-server, nats-server on PATH -- each only when new enough (Debian 12's
# packaged 2.9.10 silently ignores consumer filters, see docs/benchmarks.md and shared FACTS). Otherwise the
# binary is taken out of a newer distribution package: first from this machine's own apt sources (Ubuntu 24.04
# and Debian 13 ship 2.10+), then from Debian's newer suites on the mirror this machine is already configured
# with. `apt-get download` + `dpkg -x` into a temp folder: nothing is installed system-wide, no root needed
# beyond what apt-get update needs for its own temp lists.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/tools/nats-server"

log() { echo "ensure-nats-server: $*" >&2; }

version_ok() {
  local out major minor
  out=$("$1" --version 2>/dev/null) || return 1
  read -r major minor < <(sed -n 's/.*v\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p' <<<"$out")
  [ -n "${major:-}" ] || return 1
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }
}

for candidate in "${NATS_SERVER_BIN:-}" "$dest" "$(command -v nats-server 2>/dev/null || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && version_ok "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  log "no nats-server >= 2.10 found and no apt-get/dpkg to fetch one."
  log "Install nats-server 2.10 or newer and put it on PATH, or set NATS_SERVER_BIN."
  exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/pkg"

extract() { # $1: .deb
  dpkg -x "$1" "$work/pkg"
  local bin
  bin=$(find "$work/pkg" -type f -name nats-server | head -n 1)
  [ -n "$bin" ] && version_ok "$bin" || return 1
  mkdir -p "$(dirname "$dest")"
  cp "$bin" "$dest.tmp" && chmod +x "$dest.tmp" && mv "$dest.tmp" "$dest"
  log "installed $("$dest" --version) at $dest"
  echo "$dest"
}

# 1. This machine's own sources, if their candidate is new enough.
candidate=$(apt-cache policy nats-server 2>/dev/null | sed -n 's/ *Candidate: *\([0-9]*\)\.\([0-9]*\).*/\1 \2/p' || true)
if [ -n "$candidate" ]; then
  read -r major minor <<<"$candidate"
  if [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }; then
    (cd "$work" && apt-get download -q nats-server >/dev/null 2>&1) &&
      extract "$(ls "$work"/nats-server_*.deb | head -n 1)" && exit 0
  fi
fi

# 2. Debian's newer suites on the configured Debian mirror.
mirror=$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}'
  } | grep -v -i security | grep -i debian | head -n 1 || true)
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ -n "$mirror" ] && [ -f "$keyring" ]; then
  for suite in trixie testing unstable; do
    echo "deb [signed-by=$keyring] $mirror $suite main" >"$work/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State=$work/state" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
              -o APT::Sandbox::User=root -q)
    log "fetching nats-server from Debian $suite on the configured mirror"
    if apt-get "${apt_opts[@]}" update >/dev/null 2>&1 &&
       (cd "$work" && apt-get "${apt_opts[@]}" download nats-server >/dev/null 2>&1); then
      deb=$(ls "$work"/nats-server_*.deb 2>/dev/null | head -n 1)
      [ -n "$deb" ] && extract "$deb" && exit 0
    fi
  done
fi

log "could not obtain nats-server >= 2.10."
log "Install it (https://github.com/nats-io/nats-server/releases or your distribution's 2.10+ package),"
log "then put it on PATH or set NATS_SERVER_BIN=/path/to/nats-server."
exit 1
