#!/usr/bin/env bash
# Unity Fleet quickstart: build, start a controller on its embedded defaults (its own
# PostgreSQL cluster, built-in CA, job-signing key), enroll an agent on this host, and show
# this host's real facts through the HTTP API. Runs until Ctrl-C.
#
#   ./quickstart.sh            # release build, keeps running
#   ./quickstart.sh --check    # exit 0 once this host's facts are visible (CI smoke test)
#
# Environment: UNITY_DEMO_DIR (state, default ./.unity-demo), UNITY_DEMO_PROFILE
# (release|debug, default release), UNITY_QUIC_LISTEN (127.0.0.1:7443),
# UNITY_API_LISTEN (127.0.0.1:7080).
set -euo pipefail
cd "$(dirname "$0")"

check_only=false
[[ "${1:-}" == "--check" ]] && check_only=true

demo_dir=${UNITY_DEMO_DIR:-$PWD/.unity-demo}
# As root the embedded PostgreSQL runs as `postgres`, which may not be able to enter this
# checkout (e.g. under /root): keep the demo state where it can.
if [[ -z "${UNITY_DEMO_DIR:-}" && $EUID -eq 0 ]] && id postgres >/dev/null 2>&1 &&
   ! runuser -u postgres -- test -x "$PWD" 2>/dev/null; then
  demo_dir=/var/tmp/unity-demo
fi
profile=${UNITY_DEMO_PROFILE:-release}
export UNITY_DATA_DIR="$demo_dir/controller"
export UNITY_QUIC_LISTEN=${UNITY_QUIC_LISTEN:-127.0.0.1:7443}
export UNITY_API_LISTEN=${UNITY_API_LISTEN:-127.0.0.1:7080}
export UNITY_REPORT_INTERVAL_SECS=${UNITY_REPORT_INTERVAL_SECS:-15}
agent_dir="$demo_dir/agent"
api="http://$UNITY_API_LISTEN"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

say "building unity-controller and unity-agent ($profile)"
if [[ "$profile" == release ]]; then
  cargo build --locked --release -p unity-controller -p unity-agent
else
  cargo build --locked -p unity-controller -p unity-agent
fi
bin="$PWD/target/$profile"
controller="$bin/unity-controller"
agent="$bin/unity-agent"
mkdir -p "$demo_dir"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

say "preparing tenant 'homelab' and an API token"
"$controller" tenant list | grep -q $'\thomelab$' || "$controller" tenant create homelab >/dev/null
token_file="$demo_dir/api-token"
[[ -s "$token_file" ]] || "$controller" api-token create --tenant homelab --name quickstart >"$token_file"
api_token=$(cat "$token_file")
# A second token that may act (create jobs): kept apart so the read token stays read-only.
operate_file="$demo_dir/api-token-operate"
[[ -s "$operate_file" ]] ||
  "$controller" api-token create --tenant homelab --name quickstart-ops --scope operate >"$operate_file"
operate_token=$(cat "$operate_file")
# A console user (the web page at $api/): the password is made once and kept in the demo dir.
console_file="$demo_dir/console-password"
if [[ ! -s "$console_file" ]]; then
  (umask 077; head -c 15 /dev/urandom | base32 | tr -d '=\n' >"$console_file")
  "$controller" user create --tenant homelab --role admin --password-stdin admin <"$console_file" >/dev/null
fi
console_password=$(cat "$console_file")

say "starting the controller (QUIC $UNITY_QUIC_LISTEN, API $api; log $demo_dir/controller.log)"
"$controller" serve >>"$demo_dir/controller.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "$api/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { tail -20 "$demo_dir/controller.log"; exit 1; }
  sleep 0.2
done

if [[ ! -s "$agent_dir/enrollment.json" ]]; then
  say "enrolling this host"
  enroll_token=$("$controller" enroll-token create --tenant homelab --ttl 10m --quiet)
  "$agent" --state-dir "$agent_dir" enroll --controller "$UNITY_QUIC_LISTEN" \
    --token "$enroll_token" --ca-fingerprint "$("$controller" ca fingerprint)"
fi

say "starting the agent (log $demo_dir/agent.log)"
"$agent" --state-dir "$agent_dir" run >>"$demo_dir/agent.log" 2>&1 &
pids+=($!)

pretty() { if command -v python3 >/dev/null; then python3 -m json.tool; else cat; echo; fi; }
host_id=$(sed -n 's/.*"host_id": *"\([0-9a-f-]*\)".*/\1/p' "$agent_dir/enrollment.json")
for _ in $(seq 1 150); do
  detail=$(curl -fsS -H "Authorization: Bearer $api_token" "$api/api/v1/hosts/$host_id" 2>/dev/null || true)
  [[ "$detail" == *'"kernel_version"'* ]] && break
  sleep 0.2
done
[[ "$detail" == *'"kernel_version"'* ]] || { say "the host never appeared"; tail -20 "$demo_dir"/*.log; exit 1; }

say "GET $api/api/v1/hosts"
curl -fsS -H "Authorization: Bearer $api_token" "$api/api/v1/hosts" | pretty
say "GET $api/api/v1/hosts/$host_id"
printf '%s' "$detail" | pretty

# Storage and inventory are collected at connect too; show what this host has (or why not).
for what in storage inventory; do
  summary=""
  for _ in $(seq 1 50); do
    summary=$(curl -fsS -H "Authorization: Bearer $api_token" "$api/api/v1/hosts/$host_id/$what" 2>/dev/null || true)
    [[ "$summary" == *'"source"'* ]] && break
    sleep 0.2
  done
  if [[ -n "$summary" ]]; then
    say "GET $api/api/v1/hosts/$host_id/$what"
    printf '%s' "$summary" | pretty
  fi
done

# Pending package updates (an apt simulation on this host: nothing is changed), shown as a
# count of updates and security updates, and whether a reboot is required.
packages=""
for _ in $(seq 1 75); do
  packages=$(curl -fsS -H "Authorization: Bearer $api_token" "$api/api/v1/hosts/$host_id/packages" 2>/dev/null || true)
  [[ "$packages" == *'"manager"'* ]] && break
  sleep 0.2
done
if [[ "$packages" == *'"manager"'* ]]; then
  say "GET $api/api/v1/hosts/$host_id/packages  (summary)"
  if command -v python3 >/dev/null; then
    PACKAGES="$packages" python3 - <<'PY'
import json, os
p = json.loads(os.environ["PACKAGES"])
print("manager %s (%s): %d pending, %d security, reboot required: %s" % (
    p["manager"] or "-", p["source_state"], p["pending_count"], p["security_count"],
    p["reboot_required"]))
PY
  else
    printf '%s\n' "$packages"
  fi
fi

# The job path: a signed `ping` (changes nothing) comes back with a receipt signed by this
# host's key.
say "POST $api/api/v1/jobs  (a signed 'ping' job for this host)"
job=$(curl -fsS -H "Authorization: Bearer $operate_token" -H 'content-type: application/json' \
  -d "{\"host_id\": \"$host_id\", \"kind\": \"ping\", \"params\": {\"message\": \"hello from the quickstart\"}}" \
  "$api/api/v1/jobs")
job_id=$(printf '%s' "$job" | sed -n 's/.*"id": *"\([0-9a-f-]*\)".*/\1/p' | head -1)
for _ in $(seq 1 100); do
  job=$(curl -fsS -H "Authorization: Bearer $api_token" "$api/api/v1/jobs/$job_id" 2>/dev/null || true)
  [[ "$job" == *'"finished_at":"'* ]] && break
  sleep 0.2
done
say "GET $api/api/v1/jobs/$job_id"
printf '%s' "$job" | pretty
[[ "$job" == *'"state":"succeeded"'* && "$job" == *'"status":"verified"'* ]] ||
  { say "the ping job did not come back verified"; tail -20 "$demo_dir"/*.log; exit 1; }

# The web console: log in as the quickstart's user and find this host on the fleet page.
say "GET $api/  (the web console, logged in as 'admin')"
cookies="$demo_dir/console-cookies"
login_status=$(curl -sS -o /dev/null -w '%{http_code}' -c "$cookies" \
  --data-urlencode name=admin --data-urlencode "password=$console_password" "$api/login")
fleet_page=$(curl -fsS -b "$cookies" "$api/" || true)
rm -f "$cookies"
hostname_shown=$(printf '%s' "$detail" | sed -n 's/.*"hostname": *"\([^"]*\)".*/\1/p' | head -1)
[[ "$login_status" == 303 && "$fleet_page" == *">$hostname_shown<"* ]] ||
  { say "the console did not show this host (login answered $login_status)"; exit 1; }
echo "the fleet page lists $hostname_shown"

$check_only && { say "quickstart check passed"; exit 0; }

cat <<MSG

Your controller is running with this host enrolled.
Web console: $api/  (user admin, password $console_password)
Or the API:
  curl -H "Authorization: Bearer $api_token" $api/api/v1/hosts
  curl -H "Authorization: Bearer $api_token" $api/api/v1/containers
  curl -H "Authorization: Bearer $api_token" $api/api/v1/jobs
  curl $api/api/v1/openapi.json
Update a container (the newer digest the update check found), health-gated, rolled back if it fails:
  curl -H "Authorization: Bearer $operate_token" -H 'content-type: application/json' \\
    -d '{"host_id": "$host_id", "kind": "container_update", "params": {"container": "NAME"}}' $api/api/v1/jobs
State lives in $demo_dir (delete it to start over). Press Ctrl-C to stop.
MSG
wait
