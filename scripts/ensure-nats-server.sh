#!/usr/bin/env bash
# Prints the path of a nats-server the worker accepts, installing one into tools/ when none is found.
#
# The worker refuses a nats-server older than MIN_VERSION (docs/deployment.md says why). Keep the number in step
# with Bridge.Worker/Nats/NatsServerRequirement.cs (a test compares them).
#
# Order: $NATS_SERVER_BIN, tools/nats-server, nats-server on PATH -- each only when accepted. Otherwise the
# binary is taken out of a distribution package: first from this machine's own apt sources, then from Debian's
# newer suites (testing, then unstable) on the mirror this machine is already configured with. `apt-get
# download` + `dpkg -x` into a temp folder: nothing is installed system-wide. An older tools/nats-server is
# replaced.
#
# --below-minimum: instead, a real nats-server older than MIN_VERSION in tools/nats-server-below-minimum (from this
# machine's own sources, else Debian trixie's 2.10), for the test that the worker refuses one.
set -euo pipefail

MIN_VERSION=2.14.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/tools/nats-server"
suites=(testing unstable)
below=false
if [ "${1:-}" = "--below-minimum" ]; then
  below=true
  dest="$root/tools/nats-server-below-minimum"
  suites=(trixie)
fi

log() { echo "ensure-nats-server: $*" >&2; }

# $1: a version such as 2.15.1 or 2.15.1-1 (Debian); true when the worker accepts it.
accepted() {
  local major minor patch min_major min_minor min_patch
  IFS=. read -r major minor patch <<<"${1%%-*}"
  IFS=. read -r min_major min_minor min_patch <<<"$MIN_VERSION"
  patch="${patch%%[!0-9]*}"
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ && "${patch:-0}" =~ ^[0-9]+$ ]] || return 1
  local v=$(( major * 1000000 + minor * 1000 + ${patch:-0} )) min=$(( min_major * 1000000 + min_minor * 1000 + min_patch ))
  [ "$v" -ge "$min" ]
}

# $1: a version; true when it is what this run looks for.
wanted() { if $below; then [ -n "$1" ] && ! accepted "$1"; else accepted "$1"; fi; }

binary_version() { "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p'; }

candidates=("$dest")
$below || candidates=("${NATS_SERVER_BIN:-}" "$dest" "$(command -v nats-server 2>/dev/null || true)")
for candidate in "${candidates[@]}"; do
  [ -n "$candidate" ] && [ -x "$candidate" ] || continue
  version="$(binary_version "$candidate")"
  if wanted "$version"; then
    echo "$candidate"
    exit 0
  fi
  log "skipping $candidate: version ${version:-unknown} (need >= $MIN_VERSION)"
done

command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  log "no nats-server >= $MIN_VERSION found and no apt-get/dpkg to fetch one."
  log "Install nats-server $MIN_VERSION or newer and put it on PATH, or set NATS_SERVER_BIN."
  exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/pkg"

extract() { # $1: .deb
  dpkg -x "$1" "$work/pkg"
  local bin
  bin=$(find "$work/pkg" -type f -name nats-server | head -n 1)
  [ -n "$bin" ] && wanted "$(binary_version "$bin")" || return 1
  mkdir -p "$(dirname "$dest")"
  cp "$bin" "$dest.tmp" && chmod +x "$dest.tmp" && mv "$dest.tmp" "$dest"
  log "installed $("$dest" --version) at $dest"
  echo "$dest"
}

# $@: extra apt options; downloads nats-server when the candidate those sources offer is accepted.
download() {
  local candidate
  candidate=$(apt-cache "$@" policy nats-server 2>/dev/null | sed -n 's/ *Candidate: *\([0-9][0-9.]*\).*/\1/p' || true)
  [ -n "$candidate" ] && wanted "$candidate" || return 1
  (cd "$work" && apt-get "$@" download nats-server >/dev/null 2>&1) || return 1
  ls "$work"/nats-server_*.deb 2>/dev/null | head -n 1
}

# 1. This machine's own sources, if their candidate is accepted.
if deb=$(download -q) && [ -n "$deb" ]; then
  extract "$deb" && exit 0
fi

# 2. Debian's newer suites on the configured Debian mirror, newest first.
mirror=$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}'
  } | grep -v -i security | grep -i debian | head -n 1 || true)
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ -n "$mirror" ] && [ -f "$keyring" ]; then
  for suite in "${suites[@]}"; do
    echo "deb [signed-by=$keyring] $mirror $suite main" >"$work/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State=$work/state" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
              -o APT::Sandbox::User=root -q)
    log "fetching nats-server from Debian $suite on the configured mirror"
    if apt-get "${apt_opts[@]}" update >/dev/null 2>&1 && deb=$(download "${apt_opts[@]}") && [ -n "$deb" ]; then
      extract "$deb" && exit 0
    fi
  done
fi

$below && { log "could not obtain a nats-server older than $MIN_VERSION."; exit 1; }
log "could not obtain nats-server >= $MIN_VERSION."
log "Install it (the nats-server releases, or your distribution's package of $MIN_VERSION or newer),"
log "then put it on PATH or set NATS_SERVER_BIN=/path/to/nats-server."
exit 1
