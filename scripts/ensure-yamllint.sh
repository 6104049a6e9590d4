#!/usr/bin/env bash
# Prints the path of a yamllint command, installing one into tools/yamllint/ when none is found.
#
# Order: yamllint on PATH, then tools/yamllint/yamllint. Otherwise Debian's packages (yamllint and the pure
# Python libraries it imports) are fetched with `apt-get download` and unpacked with `dpkg -x` into
# tools/yamllint/: nothing is installed system-wide. yamllint runs on the machine's python3 (>= 3.7); a machine
# without one gets Debian's python3.11 interpreter unpacked beside it the same way.
# YAMLLINT_OWN_PYTHON=1 forces that path (to test it on a machine that has python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/tools/yamllint"
wrapper="$dest/yamllint"

log() { echo "ensure-yamllint: $*" >&2; }

works() { "$1" --version >/dev/null 2>&1; }

if [ "${YAMLLINT_OWN_PYTHON:-}" != 1 ]; then
  for candidate in "$(command -v yamllint 2>/dev/null || true)" "$wrapper"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && works "$candidate"; then
      echo "$candidate"
      exit 0
    fi
  done
fi

command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  log "no yamllint found and no apt-get/dpkg to fetch one: install yamllint (e.g. pip install yamllint)."
  exit 1
}

python=""
if [ "${YAMLLINT_OWN_PYTHON:-}" != 1 ]; then
  for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 7) else 1)' 2>/dev/null; then
      python="$(command -v "$candidate")"
      break
    fi
  done
fi

packages=(yamllint python3-yaml python3-pathspec)
if [ -z "$python" ]; then
  log "no python3 >= 3.7: fetching Debian's python3.11 as well"
  packages+=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# With this machine's package lists; on a machine whose lists were never fetched, with a private copy of them
# (this machine's own sources, fetched into the temp folder: the system's apt state is left alone).
download() {
  (cd "$work" && apt-get download -q "${packages[@]}" >/dev/null 2>&1) && return 0
  log "apt-get download failed with the system's package lists; fetching a private copy of them"
  mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial"
  local opts=(-o "Dir::State=$work/state" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
              -o APT::Sandbox::User=root -q)
  apt-get "${opts[@]}" update >/dev/null 2>&1 &&
    (cd "$work" && apt-get "${opts[@]}" download "${packages[@]}" >/dev/null 2>&1)
}

if ! download; then
  log "could not download ${packages[*]} from the configured Debian/Ubuntu sources."
  log "Install yamllint yourself (apt-get install yamllint, or pip install yamllint)."
  exit 1
fi

rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
for deb in "$work"/*.deb; do
  dpkg -x "$deb" "$dest.tmp"
done

if [ -z "$python" ]; then
  # Found by the wrapper relative to itself; the interpreter finds its standard library from its own location.
  python='$here/usr/bin/python3.11'
fi

cat >"$dest.tmp/yamllint" <<EOF
#!/usr/bin/env bash
# Written by scripts/ensure-yamllint.sh: yamllint unpacked from Debian's packages, nothing installed system-wide.
here="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="\$here/usr/lib/python3/dist-packages" exec "$python" -m yamllint "\$@"
EOF
chmod +x "$dest.tmp/yamllint"

# Swap in only what works.
(cd "$dest.tmp" && ./yamllint --version >/dev/null) || {
  log "the unpacked yamllint does not run: $("$dest.tmp/yamllint" --version 2>&1 | tail -n 1)"
  rm -rf "$dest.tmp"
  exit 1
}
rm -rf "$dest"
mv "$dest.tmp" "$dest"
log "installed $("$wrapper" --version) at $wrapper"
echo "$wrapper"
