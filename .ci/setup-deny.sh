#!/usr/bin/env bash
# The dependency policy check (deny.toml: licences, bans, sources) runs the real cargo-deny,
# pinned and installed once into /opt/unity-ci/cargo-deny.
set -euo pipefail
cargo_deny_version=0.20.2
bin=/opt/unity-ci/cargo-deny/bin/cargo-deny
if ! "$bin" --version 2>/dev/null | grep -q " $cargo_deny_version\$"; then
  # --debug: it runs for a second on our lock file; an unoptimised build saves CI minutes.
  cargo install --quiet --locked --debug --version "$cargo_deny_version" \
    --root /opt/unity-ci/cargo-deny cargo-deny
fi
"$bin" --version
