#!/usr/bin/env bash
# Prints the path of a runnable redis-server (for the SignalR + Redis backplane peer of `make bench`),
# installing one into tools/redis/ when none is found.
#
# Order: $REDIS_SERVER_BIN, tools/redis/redis-server, redis-server on PATH. Otherwise the Debian packages
# (redis-server, redis-tools and the two libraries redis-tools needs beyond a base system: libjemalloc2,
# liblzf1) are fetched with `apt-get download` from this machine's own configured apt sources, using a private
# apt state folder (no lock on the system's lists, no `apt-get update` of the system needed), and unpacked with
# `dpkg -x`. Nothing is installed system-wide; tools/redis/redis-server is a wrapper that sets LD_LIBRARY_PATH.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tools/redis"
dest="$dir/redis-server"

log() { echo "ensure-redis: $*" >&2; }

runs() { "$1" --version >/dev/null 2>&1; }

for candidate in "${REDIS_SERVER_BIN:-}" "$dest" "$(command -v redis-server 2>/dev/null || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && runs "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  log "no redis-server found and no apt-get/dpkg to fetch one; install redis-server or set REDIS_SERVER_BIN."
  exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/pkg"

# The machine's own sources (deb822 .sources and one-line .list files), in a private copy.
cp /etc/apt/sources.list "$work/sources.list" 2>/dev/null || : >"$work/sources.list"
mkdir -p "$work/parts"
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] && cp "$f" "$work/parts/"
done
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
          -o "Dir::State=$work/state" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
          -o APT::Sandbox::User=root -q)

log "fetching redis-server from this machine's apt sources"
apt-get "${apt_opts[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; log "apt-get update failed"; exit 1; }
(cd "$work" && apt-get "${apt_opts[@]}" download redis-server redis-tools libjemalloc2 liblzf1 >"$work/download.log" 2>&1) ||
  { cat "$work/download.log" >&2; log "apt-get download failed"; exit 1; }
for deb in "$work"/*.deb; do
  dpkg -x "$deb" "$work/pkg"
done

rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/lib"
# Debian's redis-server is a link to redis-check-rdb (one binary that dispatches on its name).
cp "$work/pkg/usr/bin/redis-check-rdb" "$dir.tmp/redis-server.bin"
find "$work/pkg" \( -name 'libjemalloc.so*' -o -name 'liblzf.so*' \) -exec cp -P {} "$dir.tmp/lib/" \;
cat >"$dir.tmp/redis-server" <<'SH'
#!/usr/bin/env bash
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec -a redis-server "$here/redis-server.bin" "$@"
SH
chmod +x "$dir.tmp/redis-server" "$dir.tmp/redis-server.bin"
rm -rf "$dir" && mv "$dir.tmp" "$dir"
runs "$dest" || { log "the unpacked redis-server does not run:"; "$dest" --version >&2 || true; exit 1; }
log "installed $("$dest" --version | head -n 1) at $dest"
echo "$dest"
