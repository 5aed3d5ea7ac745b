#!/usr/bin/env bash
# The agent beside its peers (docs/performance.md, "The agent beside collectd, node_exporter
# and Netdata"): our release agent, connected to a real controller, runs on this host at the
# same time as Debian's collectd, prometheus-node-exporter (scraped by curl at the same
# interval) and Netdata, all at one collection interval. After a warm-up the script reads each
# one's CPU time (user + system, its whole process tree, reaped children included) and its
# resident memory every few seconds, and prints one table with the ratios to our agent.
#
#   sudo scripts/agent-peers.sh                  # 10 minutes at 60 s, the documented run
#   PEERS_SECS=120 sudo scripts/agent-peers.sh   # a quick one
#
# Environment: PEERS_SECS (measured window, default 600), PEERS_INTERVAL (60),
# PEERS_WARMUP (90: every first round, ours and theirs, is outside the window),
# PEERS_DIR (/var/tmp/unity-peers), PEERS_INVENTORY (our inventory interval, default the
# agent's own). Needs root, the peers (apt install collectd-core prometheus-node-exporter
# netdata-core), curl, and the release builds:
#   cargo build --release -p unity-controller && cargo build --profile release-agent -p unity-agent
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${PEERS_SECS:-600}
interval=${PEERS_INTERVAL:-60}
warmup=${PEERS_WARMUP:-90}
work=${PEERS_DIR:-/var/tmp/unity-peers}
target=${CARGO_TARGET_DIR:-$PWD/target}
controller=${PEERS_CONTROLLER:-$target/release/unity-controller}
agent=${PEERS_AGENT:-$target/release-agent/unity-agent}
hz=$(getconf CLK_TCK)

say() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (the agent reads disks; the embedded PostgreSQL runs as postgres)"
for tool in "$controller" "$agent" /usr/sbin/collectd /usr/bin/prometheus-node-exporter /usr/sbin/netdata; do
  [[ -x "$tool" ]] || die "$tool is missing (see the header of $0)"
done

rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f "$work/netdata.pid" ]] && kill "$(cat "$work/netdata.pid")" 2>/dev/null || true
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# --- our agent, connected to a real controller (embedded PostgreSQL) ---------------------
export UNITY_DATA_DIR=$work/controller
export UNITY_QUIC_LISTEN=127.0.0.1:17443
export UNITY_API_LISTEN=127.0.0.1:17080
export UNITY_REPORT_INTERVAL_SECS=$interval
"$controller" tenant create peers >/dev/null
"$controller" serve >"$work/controller.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  curl -fsS "http://$UNITY_API_LISTEN/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { tail -20 "$work/controller.log"; die "controller did not start"; }
  sleep 0.2
done
token=$("$controller" enroll-token create --tenant peers --ttl 10m --quiet)
"$agent" --state-dir "$work/agent" enroll --controller "$UNITY_QUIC_LISTEN" \
  --token "$token" --ca-fingerprint "$("$controller" ca fingerprint)" >/dev/null
agent_args=(--state-dir "$work/agent" run)
[[ -n "${PEERS_INVENTORY:-}" ]] && agent_args+=(--inventory-interval-secs "$PEERS_INVENTORY")
"$agent" "${agent_args[@]}" >"$work/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")

# --- collectd: the usual host plugins, shipped over its network protocol ------------------
cat >"$work/collectd.conf" <<EOF
Interval $interval
BaseDir "$work/collectd"
PIDFile "$work/collectd.pid"
PluginDir "/usr/lib/collectd"
LoadPlugin cpu
LoadPlugin load
LoadPlugin memory
LoadPlugin swap
LoadPlugin df
LoadPlugin disk
LoadPlugin interface
LoadPlugin processes
LoadPlugin uptime
LoadPlugin users
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "25826"
</Plugin>
EOF
mkdir -p "$work/collectd"
/usr/sbin/collectd -f -C "$work/collectd.conf" >"$work/collectd.log" 2>&1 &
collectd_pid=$!
pids+=("$collectd_pid")

# --- node_exporter: its default collectors, scraped once per interval ---------------------
/usr/bin/prometheus-node-exporter --web.listen-address=127.0.0.1:19100 >"$work/node_exporter.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
(
  while sleep "$interval"; do
    curl -fsS -o /dev/null http://127.0.0.1:19100/metrics || true
  done
) &
pids+=($!)

# --- Netdata: its built-in collectors at the same interval, no web dashboard traffic ------
mkdir -p "$work/netdata/cache" "$work/netdata/lib" "$work/netdata/log"
chown -R netdata: "$work/netdata" 2>/dev/null || true
/usr/sbin/netdata -P "$work/netdata.pid" -p 19999 -i 127.0.0.1 \
  -W set global "update every" "$interval" \
  -W set global "cache directory" "$work/netdata/cache" \
  -W set global "lib directory" "$work/netdata/lib" \
  -W set global "log directory" "$work/netdata/log" \
  >"$work/netdata.log" 2>&1
for _ in $(seq 1 50); do [[ -s "$work/netdata.pid" ]] && break; sleep 0.2; done
netdata_pid=$(cat "$work/netdata.pid" 2>/dev/null) || die "netdata did not start: $(tail -5 "$work/netdata.log")"

# --- measuring ---------------------------------------------------------------------------
# All descendants of a process (Netdata's plugins; the agent's smartctl and apt children).
tree() {
  local pid=$1 child
  echo "$pid"
  for child in $(pgrep -P "$pid" 2>/dev/null); do tree "$child"; done
}
# CPU ticks of a tree: its members' user + system time, and what they reaped from children
# that already ended (cutime + cstime), so a short-lived smartctl is counted once.
ticks() {
  local total=0 pid stat
  for pid in $(tree "$1"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) }
    # fields after the command: state(3) ... utime(14) stime(15) cutime(16) cstime(17)
    read -r -a f <<<"$stat"
    total=$((total + f[11] + f[12] + f[13] + f[14]))
  done
  echo "$total"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# The anonymous part of RSS (heap, stacks): what the process itself allocated, as opposed to
# the pages of its program and libraries mapped from files (clean, shared, reclaimable).
anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
tree_rss_kib() {
  local total=0 pid
  for pid in $(tree "$1"); do total=$((total + $(rss_kib "$pid"))); done
  echo "$total"
}

names=(unity-agent collectd node_exporter netdata)
mains=("$agent_pid" "$collectd_pid" "$node_pid" "$netdata_pid")
say "warming up for ${warmup}s (every first round outside the window)"
sleep "$warmup"
for i in "${!mains[@]}"; do
  kill -0 "${mains[$i]}" 2>/dev/null || die "${names[$i]} is not running (see $work)"
done
start=()
for pid in "${mains[@]}"; do start+=("$(ticks "$pid")"); done
declare -A rss_samples
say "measuring for ${secs}s at a ${interval}s interval"
elapsed=0
while ((elapsed < secs)); do
  for i in "${!mains[@]}"; do
    rss_samples[$i]+="$(rss_kib "${mains[$i]}") "
    rss_samples[t$i]+="$(tree_rss_kib "${mains[$i]}") "
    rss_samples[a$i]+="$(anon_kib "${mains[$i]}") "
  done
  sleep 5
  elapsed=$((elapsed + 5))
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
max() { tr ' ' '\n' | grep -v '^$' | sort -n | tail -1; }

printf '\n| %-13s | %12s | %9s | %12s | %12s | %9s | %9s | %9s | %9s |\n' \
  "process" "CPU ms/10min" "× agent" "RSS MiB med" "RSS MiB max" "× agent" "tree MiB" "anon MiB" "× agent"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ---------------  -------------- ----------- -------------- -------------- ----------- ----------- ----------- -----------
agent_cpu="" agent_rss="" agent_anon=""
for i in "${!mains[@]}"; do
  used=$(( $(ticks "${mains[$i]}") - start[i] ))
  cpu_ms=$(awk -v t="$used" -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.0f", t * 1000 / hz * 600 / s}')
  rss_med=$(median <<<"${rss_samples[$i]}")
  rss_max=$(max <<<"${rss_samples[$i]}")
  tree_med=$(median <<<"${rss_samples[t$i]}")
  anon_med=$(median <<<"${rss_samples[a$i]}")
  [[ -z "$agent_cpu" ]] && agent_cpu=$cpu_ms agent_rss=$rss_med agent_anon=$anon_med
  printf '| %-13s | %12s | %9s | %12s | %12s | %9s | %9s | %9s | %9s |\n' "${names[$i]}" "$cpu_ms" \
    "$(awk -v a="$cpu_ms" -v b="$agent_cpu" 'BEGIN {printf "%.2f", b ? a / b : 0}')" \
    "$(awk -v k="$rss_med" 'BEGIN {printf "%.1f", k / 1024}')" \
    "$(awk -v k="$rss_max" 'BEGIN {printf "%.1f", k / 1024}')" \
    "$(awk -v a="$rss_med" -v b="$agent_rss" 'BEGIN {printf "%.2f", b ? a / b : 0}')" \
    "$(awk -v k="$tree_med" 'BEGIN {printf "%.1f", k / 1024}')" \
    "$(awk -v k="$anon_med" 'BEGIN {printf "%.2f", k / 1024}')" \
    "$(awk -v a="$anon_med" -v b="$agent_anon" 'BEGIN {printf "%.2f", b ? a / b : 0}')"
done
echo
say "CPU at ${hz} ticks/s over ${secs}s, scaled to 10 minutes; RSS sampled every 5 s (the main process; 'tree' adds its live children; 'anon' is RSS without mapped files)"
say "agent reports acknowledged in the window: see $work/agent.log; clock ticks limit resolution to $((1000 / hz)) ms"
