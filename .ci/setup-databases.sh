#!/usr/bin/env bash
# Database servers the collector tests start for themselves (collect/tests/databases*.rs):
# Redis and MariaDB from Debian. PostgreSQL comes from .ci/run's prerequisites. The packages'
# own services must never start or keep running: every test starts its own server on loopback
# with a random port in a temp dir, and a system server would only hold ports and memory.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]] || need+=(redis-server)
[[ -x /usr/sbin/mariadbd || -x /usr/bin/mariadb-install-db ]] || need+=(mariadb-server)

if ((${#need[@]})); then
  # Keep maintainer scripts from starting the services (invoke-rc.d honours policy-rc.d).
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${need[@]}"; then
    apt-get update
    apt-get install -y --no-install-recommends "${need[@]}"
  fi
  if ((created_policy)); then
    rm -f "$policy"
  fi
fi

# Whatever did start anyway (no policy-rc.d honoured, a machine with systemd): stop it.
for svc in redis-server mariadb mysql; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
    systemctl disable "$svc" >/dev/null 2>&1 || true
  elif [[ -x "/etc/init.d/$svc" ]]; then
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
done
