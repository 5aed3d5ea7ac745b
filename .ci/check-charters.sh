#!/usr/bin/env bash
# Each library crate's charter, checked on its normal (non-dev) dependency tree. The charters
# and why: docs/architecture.md, "Crate charters". A new dependency that breaks one fails CI
# here, with the crate that brought it in named by `cargo tree -i <dep> -p <crate>`.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
# Every package in the tree of `cargo tree` arguments "$@", one name per line.
packages() {
  cargo tree --locked -e normal --prefix none "$@" | awk '{print $1}' | sort -u
}
# forbid DESCRIPTION REGEX CARGO-TREE-ARGS...: no package of the tree may match REGEX.
forbid() {
  local what=$1 pattern=$2
  shift 2
  local found
  found=$(packages "$@" | grep -Ex "$pattern" || true)
  if [[ -n $found ]]; then
    echo "charter broken: $what, but it depends on: $(echo "$found" | tr '\n' ' ')"
    failed=1
  else
    echo "ok: $what"
  fi
}

forbid "unity-protocol holds messages and framing with no I/O (tokio only behind its \`io\` feature)" \
  'tokio|mio|quinn|quinn-proto|reqwest|hyper|sqlx|axum' \
  -p unity-protocol
forbid "unity-collect without \`io\` is parsers and local-tool runners with no network stack" \
  'reqwest|hyper|hyper-util|h2|http|bollard|rustls|tokio-rustls|quinn|sqlx' \
  -p unity-collect --no-default-features
exit "$failed"
