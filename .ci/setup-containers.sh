#!/usr/bin/env bash
# Container engines and an OCI registry for tests/tests/collect_containers_real.rs and the
# container-update tests (tests/tests/container_update_*.rs, auto_update_e2e.rs).
# The tests start their own dockerd, podman API service and registry on private sockets and
# ports (nothing here starts a service or touches the host's own engine); this script only
# installs the Debian packages they run:
#   docker.io        dockerd 20.10 + docker CLI (image import/push in the tests)
#   podman, runc     podman 4.3 API service (`podman system service`) with runc
#   docker-registry  distribution v2 registry, started on loopback with a temp config
#   busybox-static   a static binary whose tarball becomes the test image (no pulls)
set -euo pipefail

need=()
[[ -x /usr/sbin/dockerd || -x /usr/bin/dockerd ]] || need+=(docker.io)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v docker-registry >/dev/null || need+=(docker-registry)
[[ -x /bin/busybox || -x /usr/bin/busybox ]] || need+=(busybox-static)

if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  # Installing docker.io must not start the host's own dockerd/registry: the tests run theirs.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  if ! apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}"; then
    apt-get -o DPkg::Lock::Timeout=600 update
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}"
  fi
fi
