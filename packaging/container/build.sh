#!/usr/bin/env bash
# Builds the controller's image with podman from a root filesystem made here (there is no
# registry to pull a base image from, and the binary needs only glibc):
#   packaging/container/build.sh [BINARY] [TAG]
# BINARY defaults to target/release/unity-controller (built if missing), TAG to
# unity-controller:<version>. PODMAN may add options (e.g. private storage in tests).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
binary=${1:-$root/target/release/unity-controller}
tag=${2:-unity-controller:$version}
podman=${PODMAN:-podman}
if [[ ! -x $binary ]]; then
  (cd "$root" && cargo build --locked --release -p unity-controller)
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
fs=$context/rootfs
install -d "$fs/usr/bin" "$fs/etc/ssl/certs" "$fs/tmp" "$fs/var/lib/unity-controller"
install -m 0755 "$binary" "$fs/usr/bin/unity-controller"
strip "$fs/usr/bin/unity-controller" 2>/dev/null || true
# The shared libraries it links, at the paths the loader looks for them.
ldd "$binary" | awk '/=> \// {print $3} /^[ \t]*\/.*ld-linux/ {print $1}' | while read -r lib; do
  install -D -m 0755 "$(readlink -f "$lib")" "$fs$lib"
done
# pg_dump and pg_restore: backups of the external database (and the backup taken before a
# migration). A client at least as new as the server's major version is needed.
pg_bin=${PG_BIN_DIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
for tool in pg_dump pg_restore; do
  install -D -m 0755 "$pg_bin/$tool" "$fs$pg_bin/$tool"
  ldd "$pg_bin/$tool" | awk '/=> \// {print $3}' | while read -r lib; do
    [[ -e $fs$lib ]] || install -D -m 0755 "$(readlink -f "$lib")" "$fs$lib"
  done
done
[[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/certs/"
printf 'root:x:0:0::/:/sbin/nologin\nunity:x:10001:10001:Unity Fleet controller:/var/lib/unity-controller:/sbin/nologin\n' >"$fs/etc/passwd"
printf 'root:x:0:\nunity:x:10001:\n' >"$fs/etc/group"
chmod 1777 "$fs/tmp"
chown 10001:10001 "$fs/var/lib/unity-controller"
chmod 0700 "$fs/var/lib/unity-controller"
cp "$here/Containerfile" "$context/"
# shellcheck disable=SC2086
$podman build --quiet --tag "$tag" \
  --label org.opencontainers.image.title=unity-controller \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  "$context"
echo "built $tag"
