#!/usr/bin/env bash
# The package test (tests/tests/packages_deb_real.rs) builds .debs with the real cargo-deb,
# checks them with the real lintian and installs them with dpkg; systemd-analyze verifies the
# units. cargo-deb is pinned and installed once into /opt/unity-ci/cargo-deb.
set -euo pipefail
cargo_deb_version=3.8.0
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v adduser >/dev/null || need+=(adduser)
if ((${#need[@]})); then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi
bin=/opt/unity-ci/cargo-deb/bin/cargo-deb
if ! "$bin" --version 2>/dev/null | grep -q " $cargo_deb_version\$"; then
  # --debug: it packages two binaries; compiling it without optimisation saves CI minutes.
  cargo install --quiet --locked --debug --version "$cargo_deb_version" --root /opt/unity-ci/cargo-deb cargo-deb
fi
"$bin" --version

# The Helm chart's check (packaging/helm/check.py): Helm v4's own Go library through PyPI's
# helm-python-sdk (there is no helm binary to fetch here) and kubernetes-validate's schemas.
venv=/opt/unity-ci/helm
want="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0"
if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate' 2>/dev/null ||
   [[ "$(cat "$venv/.pins" 2>/dev/null)" != "$want" ]]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" >"$venv/.pins"
fi
