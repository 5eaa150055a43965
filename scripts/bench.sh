#!/usr/bin/env bash
# Benchmarks Gatehouse against an nginx `return 200` on the same machine, in one run, with wrk on
# 127.0.0.1. Prints check and durable-open throughput as ratios to nginx, p99 latency at the
# given connection count, and the service's peak RSS (with MALLOC_ARENA_MAX=2, as the image sets it). Machines here are shared and noisy: compare
# the ratios, not the absolute numbers.
#
#   scripts/bench.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
duration=${1:-10}
connections=${2:-32}
threads=2

for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null; then
        [[ $(id -u) -eq 0 ]] || { echo "install wrk and nginx (apt-get install wrk nginx-light)"; exit 1; }
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
    fi
done

swift build -c release --product gatehouse >/dev/null
binary="$(swift build -c release --show-bin-path)/gatehouse"

work=$(mktemp -d)
cleanup() {
    [[ -n "${gatehouse_pid:-}" ]] && kill "$gatehouse_pid" 2>/dev/null || true
    [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

nginx_port=$((30000 + RANDOM % 10000))
gatehouse_port=$((nginx_port + 1))
cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work;
    server {
        listen 127.0.0.1:$nginx_port;
        location / { return 200 "ok"; }
    }
}
CONF
nginx -c "$work/nginx.conf"

MALLOC_ARENA_MAX=2 "$binary" serve --host 127.0.0.1 --port "$gatehouse_port" --database "$work/bench.sqlite" --log-level warning \
    >"$work/gatehouse.log" 2>&1 &
gatehouse_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$gatehouse_port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
start_kib=$(awk '/VmRSS/ { print $2 }' "/proc/$gatehouse_pid/status")

check_body='{"name": "podinfo", "namespace": "bench", "phase": "Progressing", "checksum": "85d557f47b", "metadata": {"k": "v"}}'
curl -fs -X POST "http://127.0.0.1:$gatehouse_port/v1/canaries/bench/podinfo/gates/promotion/open" \
    -d '{"sticky": true, "reason": "benchmark"}' >/dev/null

post_script() { # body
    cat <<LUA
wrk.method = "POST"
wrk.body = '$1'
wrk.headers["Content-Type"] = "application/json"
LUA
}
post_script "$check_body" >"$work/check.lua"
post_script '{"reason": "benchmark", "ttl": "1h"}' >"$work/open.lua"

run() { # name url [script]
    wrk -t"$threads" -c"$connections" -d"${duration}s" --latency ${3:+-s "$3"} "$2" >"$work/$1.txt"
    grep -q "Non-2xx" "$work/$1.txt" && { echo "$1: non-2xx responses"; cat "$work/$1.txt"; exit 1; }
    awk '/Requests\/sec/ { print $2 }' "$work/$1.txt"
}
p99() { # name -> milliseconds
    awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.2f", v }' "$work/$1.txt"
}

# Warm up both, then measure nginx before and after the service so drift shows.
wrk -t1 -c4 -d2s -s "$work/check.lua" "http://127.0.0.1:$gatehouse_port/v1/flagger/confirm-promotion" >/dev/null
nginx_before=$(run nginx-before "http://127.0.0.1:$nginx_port/v1/flagger/confirm-promotion" "$work/check.lua")
checks=$(run checks "http://127.0.0.1:$gatehouse_port/v1/flagger/confirm-promotion" "$work/check.lua")
# The floor of the HTTP stack: a handler that does nothing, through the same server and middlewares.
floor=$(run floor "http://127.0.0.1:$gatehouse_port/healthz")
opens=$(run opens "http://127.0.0.1:$gatehouse_port/v1/canaries/bench/podinfo/gates/rollout/open" "$work/open.lua")
nginx_after=$(run nginx-after "http://127.0.0.1:$nginx_port/v1/flagger/confirm-promotion" "$work/check.lua")
rss_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$gatehouse_pid/status")
anon_kib=$(awk '/RssAnon/ { print $2 }' "/proc/$gatehouse_pid/status")
opened=$(curl -fs "http://127.0.0.1:$gatehouse_port/v1/events?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["id"])')

python3 - "$nginx_before" "$nginx_after" "$checks" "$opens" "$(p99 checks)" "$(p99 opens)" "$(p99 nginx-before)" "$rss_kib" "$connections" "$duration" "$opened" "$anon_kib" "$floor" "$start_kib" <<'PY'
import sys
nb, na, checks, opens = map(float, sys.argv[1:5])
p99_checks, p99_opens, p99_nginx = sys.argv[5:8]
rss = int(sys.argv[8]) / 1024
connections, duration, audit = sys.argv[9], sys.argv[10], sys.argv[11]
anon = int(sys.argv[12]) / 1024
floor = float(sys.argv[13])
start = int(sys.argv[14]) / 1024
nginx = (nb + na) / 2
print(f"wrk: {connections} connections, 2 threads, {duration}s per run, 127.0.0.1, all on one machine")
print(f"| measure | result | target |")
print(f"|---|---|---|")
print(f"| nginx `return 200` (baseline) | {nginx:,.0f} req/s (before {nb:,.0f}, after {na:,.0f}); p99 {p99_nginx} ms | |")
print(f"| floor: `GET /healthz` (a handler that does nothing, same server) | {floor:,.0f} req/s = {floor / nginx:.2f}× nginx | |")
print(f"| checks (`confirm-promotion`, open gate; answered on the event loop) | {checks:,.0f} req/s = **{checks / nginx:.2f}×** nginx | ≥ 0.8× |")
print(f"| durable opens (`gates/rollout/open`) | {opens:,.0f} req/s = **{opens / nginx:.2f}×** nginx | ≥ 0.5× |")
print(f"| p99 latency, checks | **{p99_checks} ms** | ≤ 5 ms |")
print(f"| p99 latency, durable opens | {p99_opens} ms | |")
print(f"| peak RSS of the service | **{rss:.1f} MiB** ({start:.1f} MiB when ready, before any request; {anon:.1f} MiB private at the end, the rest file-backed code and data pages) | ≤ 32 MiB |")
print(f"(audit entries written during the run: {audit})")
PY
