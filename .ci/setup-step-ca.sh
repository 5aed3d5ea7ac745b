#!/usr/bin/env bash
# A real step-ca for the PKI tests (docs/pki.md), built from Debian's packages: the library
# package has no cmd/step-ca, so .ci/step-ca/main.go (a few lines calling its start command)
# is built in GOPATH mode. The binary is cached by the hash of that source and the package
# version, so only the first run on a machine pays the ~1 min build.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v go >/dev/null || need+=(golang-go)
[[ -d /usr/share/gocode/src/github.com/smallstep/certificates ]] || need+=(golang-github-smallstep-certificates-dev)
if ((${#need[@]})); then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

version=$(dpkg-query -W -f='${Version}' golang-github-smallstep-certificates-dev)
key=$( (cat .ci/step-ca/main.go; echo "$version"; go version) | sha256sum | cut -c1-16)
cache=/var/cache/unity-ci/step-ca/$key
if [[ ! -x $cache/step-ca ]]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/src/unity/step-ca" "$cache"
  cp .ci/step-ca/main.go "$work/src/unity/step-ca/"
  # cgo warnings from the zstd binding are noise; errors still fail the build.
  GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="$work/cache" \
    go build -o "$cache/step-ca.tmp" unity/step-ca 2> >(grep -v -e 'warning:' -e 'note:' -e '^In file included' -e '^ *[0-9]* |' -e '^ *|' -e 'cgo-gcc-prolog' >&2 || true)
  mv "$cache/step-ca.tmp" "$cache/step-ca"
fi
ln -sf "$cache/step-ca" /usr/local/bin/step-ca
echo "step-ca: $(readlink -f /usr/local/bin/step-ca) (certificates $version)"
