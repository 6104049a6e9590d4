#!/usr/bin/env bash
# Prints the path of a runnable nginx, installing one into tools/nginx/ when none is found.
#
# Order: $NGINX_BIN, tools/nginx/nginx, nginx on PATH (or /usr/sbin/nginx). Otherwise the binary is taken out
# of the distribution's `nginx` package (Debian 12: nginx 1.22) with `apt-get download` + `dpkg -x`, using the
# machine's own apt sources but a temporary apt state, so nothing is installed system-wide and the system's
# package lists are left alone. Only the binary is used: the cluster brings its own configuration
# (deploy/nginx/), so nginx-common (/etc/nginx, the systemd unit) is not needed.
#
# The shared libraries the binary links (libcrypt1, libpcre2-8-0, libssl3, zlib1g) are part of a base Debian 12
# with the .NET SDK; any that `ldd` reports missing are extracted from their packages into tools/nginx/lib, and
# tools/nginx/nginx is then a wrapper that sets LD_LIBRARY_PATH.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tools/nginx"
dest="$dir/nginx"

log() { echo "ensure-nginx: $*" >&2; }

runs() { "$1" -v >/dev/null 2>&1; }

for candidate in "${NGINX_BIN:-}" "$dest" "$(command -v nginx 2>/dev/null || true)" /usr/sbin/nginx; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && runs "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  log "no nginx found and no apt-get/dpkg to fetch one. Install nginx and put it on PATH, or set NGINX_BIN."
  exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/pkg"
apt_opts=(-o "Dir::State=$work/state" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q)

log "fetching nginx from this machine's apt sources (temporary package lists)"
apt-get "${apt_opts[@]}" update >/dev/null 2>&1 || { log "apt-get update failed"; exit 1; }
(cd "$work" && apt-get "${apt_opts[@]}" download nginx >/dev/null 2>&1) || { log "apt-get download nginx failed"; exit 1; }
dpkg -x "$(ls "$work"/nginx_*.deb | head -n 1)" "$work/pkg"
bin="$work/pkg/usr/sbin/nginx"
[ -x "$bin" ] || { log "the nginx package holds no usr/sbin/nginx"; exit 1; }

rm -rf "$dir"
mkdir -p "$dir/lib"
cp "$bin" "$dir/nginx.bin"

# Libraries the binary needs but this machine lacks: take them from their packages as well.
missing=$(ldd "$dir/nginx.bin" | awk '/not found/ {print $1}')
if [ -n "$missing" ]; then
  packages=()
  for lib in $missing; do
    case "$lib" in
      libcrypt.so.*) packages+=(libcrypt1) ;;
      libpcre2-8.so.*) packages+=(libpcre2-8-0) ;;
      libssl.so.*|libcrypto.so.*) packages+=(libssl3) ;;
      libz.so.*) packages+=(zlib1g) ;;
      *) log "nginx needs $lib, which this script does not know how to fetch"; exit 1 ;;
    esac
  done
  log "fetching missing libraries: ${packages[*]}"
  (cd "$work" && apt-get "${apt_opts[@]}" download $(printf '%s\n' "${packages[@]}" | sort -u) >/dev/null 2>&1) ||
    { log "apt-get download of ${packages[*]} failed"; exit 1; }
  for deb in "$work"/*.deb; do
    case "$(basename "$deb")" in nginx_*) continue ;; esac
    dpkg -x "$deb" "$work/libs"
  done
  find "$work/libs" -name '*.so*' \( -type f -o -type l \) -exec cp -P {} "$dir/lib/" \;
  cat >"$dest" <<'WRAP'
#!/usr/bin/env bash
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/nginx.bin" "$@"
WRAP
  chmod +x "$dest"
  still=$(LD_LIBRARY_PATH="$dir/lib" ldd "$dir/nginx.bin" | awk '/not found/ {print $1}')
  [ -z "$still" ] || { log "still missing after extraction: $still"; exit 1; }
else
  mv "$dir/nginx.bin" "$dest"
  rmdir "$dir/lib"
fi

runs "$dest" || { log "the extracted nginx does not run"; exit 1; }
log "installed $("$dest" -v 2>&1) at $dest"
echo "$dest"
