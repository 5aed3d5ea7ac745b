#!/usr/bin/env bash
# The chaos run of docs/reliability.md: a real controller (embedded PostgreSQL) and a real
# agent, put through the faults an operator meets — controller kill -9, PostgreSQL kill -9, a
# long outage with an agent kill -9 in the middle, a full disk on the agent and on the
# controller, a restore from backup — then every storage report the agent spooled is looked
# for in the store through the API. Prints one line per fault and a count at the end; exits
# non-zero if any report the agent spooled is missing (except, for the restore, those
# acknowledged after the backup was taken, which a restore loses by definition — counted).
#
#   sudo scripts/chaos.sh                 # the documented run (10-minute outage; ~25 min)
#   CHAOS_OUTAGE_SECS=60 sudo scripts/chaos.sh   # a quick one
#
# Needs root (tmpfs mounts for the full disks; the embedded PostgreSQL runs as `postgres`),
# python3 and curl. The agent reads SMART through a stand-in `smartctl` that prints a real
# recorded output (so the agent has a disk on any machine); everything else is real.
set -euo pipefail
cd "$(dirname "$0")/.."

outage=${CHAOS_OUTAGE_SECS:-600}
profile=${CHAOS_PROFILE:-debug}
work=${CHAOS_DIR:-/var/tmp/unity-chaos}
storage_every=10
fixture=$PWD/../shared/fixtures/smartctl-text/sata-ssd-liteon-smartctl66.txt
[[ -f "$fixture" ]] || fixture=/work/shared/fixtures/smartctl-text/sata-ssd-liteon-smartctl66.txt

say() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { say "FAILED: $*"; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (tmpfs mounts, PostgreSQL as postgres)"
if [[ "$profile" == release ]]; then
  cargo build --locked --release -p unity-controller -p unity-agent
else
  cargo build --locked -p unity-controller -p unity-agent
fi
built=$PWD/target/$profile

cleanup() {
  set +e
  [[ -n "${agent_pid:-}" ]] && kill -9 "$agent_pid" 2>/dev/null
  [[ -n "${controller_pid:-}" ]] && kill "$controller_pid" 2>/dev/null && wait "$controller_pid" 2>/dev/null
  pg_pid=$(head -1 "$work/controller/postgres/pgdata/postmaster.pid" 2>/dev/null)
  [[ -n "$pg_pid" ]] && kill "$pg_pid" 2>/dev/null && sleep 2
  umount "$work/controller" 2>/dev/null
  umount "$work/agent" 2>/dev/null
}
trap cleanup EXIT

# Fresh state: the controller's data directory and the agent's state directory are small
# filesystems of their own, so each side's disk can be filled without touching the machine's.
cleanup
rm -rf "$work"
mkdir -p "$work/controller" "$work/agent" "$work/bin" "$work/backups"
mount -t tmpfs -o size=400m,mode=0755 tmpfs "$work/controller"
mount -t tmpfs -o size=8m,mode=0700 tmpfs "$work/agent"
# Copies, so that rebuilding the tree during a run cannot swap a binary under a restart.
cp "$built/unity-controller" "$built/unity-agent" "$work/bin/"
controller=$work/bin/unity-controller
agent=$work/bin/unity-agent
cat >"$work/bin/smartctl" <<EOF
#!/bin/sh
# Stand-in for smartctl (see scripts/chaos.sh): one SATA SSD, a real recorded output.
case "\$*" in
  *--scan*) echo "/dev/sda -d sat # /dev/sda [SAT], ATA device" ;;
  *) cat "$fixture" ;;
esac
EOF
chmod +x "$work/bin/smartctl"

export UNITY_DATA_DIR=$work/controller
export UNITY_QUIC_LISTEN=127.0.0.1:17443
export UNITY_API_LISTEN=127.0.0.1:17080
export UNITY_REPORT_INTERVAL_SECS=5
export UNITY_BACKUP_INTERVAL_HOURS=0
api=http://$UNITY_API_LISTEN

start_controller() {
  "$controller" serve >>"$work/controller.log" 2>&1 &
  controller_pid=$!
  for _ in $(seq 1 300); do
    curl -fsS "$api/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$controller_pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
# As systemd would (Restart=on-failure, RestartSec=5s): start again until it serves.
start_controller_supervised() {
  for attempt in $(seq 1 60); do
    start_controller && return 0
    say "  controller exited (attempt $attempt; as its unit would, starting it again in 5 s)"
    sleep 5
  done
  die "the controller never came back"
}
kill9_controller() { kill -9 "$controller_pid" 2>/dev/null || true; wait "$controller_pid" 2>/dev/null || true; }
start_agent() {
  PATH=$work/bin:$PATH UNITY_LOG_FORMAT=json \
    UNITY_LOG='info,quinn=warn,unity_agent::run::collector=debug' \
    "$agent" --state-dir "$work/agent/state" run --storage-interval-secs "$storage_every" \
    >>"$work/agent.log" 2>&1 &
  agent_pid=$!
}
spool_depth() { "$agent" --state-dir "$work/agent/state" status 2>/dev/null | sed -n 's/^spool: *\([0-9]*\) report.*/\1/p'; }

# Waits until a storage sample collected after now reaches the API: the fault is recovered.
now_ms() { python3 -c 'import time; print(int(time.time()*1000))'; }
newest_sample_ms() {
  curl -fsS -H "Authorization: Bearer $token" "$api/api/v1/disks" 2>/dev/null |
    python3 -c '
import json, sys
from datetime import datetime
d = json.load(sys.stdin)
d = d["items"] if isinstance(d, dict) else d
print(max((int(datetime.fromisoformat(x["last_seen_at"].replace("Z", "+00:00")).timestamp() * 1000) for x in d), default=0))' 2>/dev/null || echo 0
}
wait_recovered() {
  local what=$1 since started=$SECONDS
  since=$(now_ms)
  for _ in $(seq 1 900); do
    if (( $(newest_sample_ms) > since )); then
      say "  recovered from $what: a new sample arrived $((SECONDS - started)) s later"
      return 0
    fi
    sleep 1
  done
  die "no new sample after $what"
}
wait_drained() {
  for _ in $(seq 1 600); do
    [[ "$(spool_depth)" == 0 ]] && { say "  agent spool drained"; return 0; }
    sleep 1
  done
  die "the agent's spool never drained (depth $(spool_depth))"
}

say "starting: controller on $UNITY_QUIC_LISTEN / $api, state in $work"
"$controller" tenant create chaos >/dev/null
token=$("$controller" api-token create --tenant chaos --name chaos)
start_controller || die "controller did not start"
"$agent" --state-dir "$work/agent/state" enroll --controller "$UNITY_QUIC_LISTEN" \
  --token "$("$controller" enroll-token create --tenant chaos --ttl 10m --quiet)" \
  --ca-fingerprint "$("$controller" ca fingerprint)" >/dev/null
start_agent
wait_recovered "the start"

say "fault 1: controller kill -9, back after 20 s"
kill9_controller
sleep 20
start_controller_supervised
wait_recovered "controller kill -9"

say "fault 2: PostgreSQL (postmaster) kill -9 under a serving controller"
kill -9 "$(head -1 "$work/controller/postgres/pgdata/postmaster.pid")"
wait_recovered "PostgreSQL kill -9"

say "fault 3: ${outage} s outage (controller killed), agent kill -9 and restart half way"
kill9_controller
sleep $((outage / 2))
say "  agent spool holds $(spool_depth) reports; agent kill -9"
kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
start_agent
sleep $((outage - outage / 2))
say "  agent spool holds $(spool_depth) reports; controller back"
start_controller_supervised
wait_recovered "the outage"
wait_drained

say "fault 4: the agent's disk full for 60 s, controller down for 30 s of it"
dd if=/dev/zero of="$work/agent/filler" bs=64k 2>/dev/null || true
sleep 15
kill9_controller
sleep 30
start_controller_supervised
sleep 15
rm -f "$work/agent/filler"
wait_recovered "the agent's full disk"
wait_drained

say "fault 5: the controller's disk full for 60 s"
dd if=/dev/zero of="$work/controller/filler" bs=1M 2>/dev/null || true
for _ in $(seq 1 60); do
  # Restarted as its unit would if it gives up on PostgreSQL meanwhile.
  kill -0 "$controller_pid" 2>/dev/null || { say "  controller exited; its unit restarts it"; start_controller || true; }
  sleep 1
done
rm -f "$work/controller/filler"
kill -0 "$controller_pid" 2>/dev/null || start_controller_supervised
wait_recovered "the controller's full disk"
wait_drained

say "fault 6: backup while serving, data directory destroyed, restore"
backup=$work/backups/chaos.tar.gz
"$controller" backup --output "$backup" >/dev/null 2>>"$work/controller.log"
backup_at_ms=$(now_ms)
sleep 20
kill9_controller
kill -9 "$(head -1 "$work/controller/postgres/pgdata/postmaster.pid")" 2>/dev/null || true
sleep 1
find "$work/controller" -mindepth 1 -delete
"$controller" restore "$backup" >>"$work/controller.log" 2>&1 || die "restore failed"
start_controller_supervised
wait_recovered "the restore"
wait_drained
sleep $((storage_every * 2))

say "counting: storage reports the agent spooled vs samples in the store"
kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
agent_pid=
disk_id=$(curl -fsS -H "Authorization: Bearer $token" "$api/api/v1/disks" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); d=d["items"] if isinstance(d, dict) else d; print(d[0]["id"])')
curl -fsS -H "Authorization: Bearer $token" "$api/api/v1/disks/$disk_id?limit=1000" >"$work/disk.json"
python3 - "$work/agent.log" "$work/disk.json" "$backup_at_ms" <<'EOF'
import json, sys
from datetime import datetime
log, disk, backup_at_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
spooled, dropped = [], 0
for line in open(log):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f = e.get("fields", {})
    if f.get("message") == "report spooled" and f.get("kind") == "storage":
        spooled.append(int(f["collected_at_ms"]))
    if "dropped" in f and "spool full" in f.get("message", ""):
        dropped += int(f["dropped"])
def ms(t):
    return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
stored = {ms(s["collected_at"]) for s in json.load(open(disk))["history"]}
missing = [t for t in spooled if t not in stored]
# Acknowledged after the backup and before the data directory was destroyed: a restore
# loses these by definition (the agent had already forgotten them).
by_restore = [t for t in missing if backup_at_ms <= t <= backup_at_ms + 25_000]
lost = [t for t in missing if t not in by_restore]
print(f"storage reports spooled by the agent: {len(spooled)}")
print(f"found in the store: {len(spooled) - len(missing)}")
print(f"dropped by the spool's bounds (counted, logged): {dropped}")
print(f"acknowledged after the backup, before the restore (lost by the restore by design): {len(by_restore)}")
print(f"LOST: {len(lost)} {lost[:10]}")
sys.exit(1 if lost else 0)
EOF
say "done; logs in $work"
