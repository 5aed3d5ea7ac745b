#!/usr/bin/env bash
# Installs Unity Fleet from this source tree onto this machine.
#   packaging/install.sh agent        # unity-agent + its systemd unit
#   packaging/install.sh controller   # unity-controller + its unit + its system user
# Builds with the lean `release-agent` profile for the agent and `release` for the controller.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-}
prefix=${PREFIX:-/usr/local}
case "$what" in
  agent)
    cargo build --locked --profile release-agent -p unity-agent
    install -m 0755 target/release-agent/unity-agent "$prefix/bin/unity-agent"
    # The unit names the packaged paths; point it at this prefix.
    sed "s|/usr/bin/|$prefix/bin/|; s|/usr/share/doc/unity-agent/|$PWD/docs/|" \
      systemd/unity-agent.service >/etc/systemd/system/unity-agent.service
    echo "installed; now: unity-agent enroll --controller HOST:7443 --token … --ca-fingerprint …"
    echo "then: systemctl daemon-reload && systemctl enable --now unity-agent"
    ;;
  controller)
    cargo build --locked --release -p unity-controller
    install -m 0755 target/release/unity-controller "$prefix/bin/unity-controller"
    sed "s|/usr/bin/|$prefix/bin/|; s|/usr/share/doc/unity-controller/|$PWD/docs/|" \
      systemd/unity-controller.service >/etc/systemd/system/unity-controller.service
    id -u unity-controller >/dev/null 2>&1 ||
      useradd --system --home-dir /var/lib/unity-controller --shell /usr/sbin/nologin unity-controller
    echo "installed; now: systemctl daemon-reload && systemctl enable --now unity-controller"
    echo "admin commands run as the service user, e.g.:"
    echo "  sudo -u unity-controller UNITY_DATA_DIR=/var/lib/unity-controller unity-controller tenant create homelab"
    ;;
  *)
    echo "usage: $0 agent|controller" >&2
    exit 2
    ;;
esac
