#!/usr/bin/env bash
# Benchmarks Gatehouse against an nginx `return 200` and a bare Hummingbird router (a constant
# answer: Benchmarks/BareRouter, built here) in one run, with wrk on 127.0.0.1, pinned: each server
# on core 0 (nginx with one worker), the load generator on core 1. Prints each measure's throughput
# as a ratio to nginx and to the bare router measured in the same run, its p99 latency, and the CPU
# time the server spent per request (user + system ticks from /proc/PID/stat, divided by the
# requests wrk completed), and the service's peak RSS (with MALLOC_ARENA_MAX=2 for both servers, as
# the figures in docs/benchmarks.md were taken; the binary's own default is 1).
# Run under scripts/with-postgres.sh, it also measures checks and durable opens with the service on
# that PostgreSQL (its server processes pinned to core 0 beside the service; their CPU time is
# added), then two replicas answering 100,000 canaries' checks at 1,700/s (scripts/bench-replicas.py).
#
#   scripts/bench.sh [DURATION_SECONDS] [CONNECTIONS]
#   scripts/with-postgres.sh scripts/bench.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
duration=${1:-10}
connections=${2:-32}
server_core=0
load_core=1

for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null; then
        [[ $(id -u) -eq 0 ]] || { echo "install wrk and nginx (apt-get install wrk nginx-light)"; exit 1; }
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
    fi
done
[[ $(nproc) -ge 2 ]] || { echo "the pinned benchmark needs two cores"; exit 1; }

swift build -c release --product gatehouse >/dev/null
swift build -c release --product bare-router >/dev/null
binary="$(swift build -c release --show-bin-path)/gatehouse"
bare_binary="$(swift build -c release --show-bin-path)/bare-router"

work=$(mktemp -d)
cleanup() {
    [[ -n "${gatehouse_pid:-}" ]] && kill "$gatehouse_pid" 2>/dev/null || true
    [[ -n "${bare_pid:-}" ]] && kill "$bare_pid" 2>/dev/null || true
    [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

nginx_port=$((30000 + RANDOM % 10000))
gatehouse_port=$((nginx_port + 1))
bare_port=$((nginx_port + 2))
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
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
taskset -c "$server_core" nginx -c "$work/nginx.conf"
for _ in $(seq 1 50); do [[ -s "$work/nginx.pid" ]] && break; sleep 0.1; done
nginx_worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)

MALLOC_ARENA_MAX=2 taskset -c "$server_core" "$bare_binary" "$bare_port" >"$work/bare.log" 2>&1 &
bare_pid=$!
MALLOC_ARENA_MAX=2 taskset -c "$server_core" "$binary" serve --host 127.0.0.1 --port "$gatehouse_port" \
    --database "$work/bench.sqlite" --log-level warning >"$work/gatehouse.log" 2>&1 &
gatehouse_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$bare_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
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

ticks() { # pids (comma-separated) -> their user + system clock ticks so far
    local total=0 pid
    for pid in ${1//,/ }; do
        [[ -r "/proc/$pid/stat" ]] && total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

# run NAME PID URL [SCRIPT]: prints "requests/s cpu-µs-per-request", keeps wrk's output for p99.
run() {
    local before after
    before=$(ticks "$2")
    taskset -c "$load_core" wrk -t1 -c"$connections" -d"${duration}s" --latency ${4:+-s "$4"} "$3" >"$work/$1.txt"
    after=$(ticks "$2")
    grep -q "Non-2xx" "$work/$1.txt" && { echo "$1: non-2xx responses"; cat "$work/$1.txt"; exit 1; }
    awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
        /requests in/ { requests = $1 }
        /Requests\/sec/ { rate = $2 }
        END { printf "%s %.1f\n", rate, ticks / hz * 1e6 / requests }' "$work/$1.txt"
}
p99() { # name -> milliseconds
    awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.2f", v }' "$work/$1.txt"
}

check_url="http://127.0.0.1:$gatehouse_port/v1/flagger/confirm-promotion"
# Warm up, then measure nginx before and after the service so drift shows.
taskset -c "$load_core" wrk -t1 -c4 -d2s -s "$work/check.lua" "$check_url" >/dev/null
results=()
results+=("nginx-before $(run nginx-before "$nginx_worker" "http://127.0.0.1:$nginx_port/v1/flagger/confirm-promotion" "$work/check.lua") $(p99 nginx-before)")
results+=("bare-floor $(run bare-floor "$bare_pid" "http://127.0.0.1:$bare_port/healthz") $(p99 bare-floor)")
results+=("bare-checks $(run bare-checks "$bare_pid" "http://127.0.0.1:$bare_port/v1/flagger/confirm-promotion" "$work/check.lua") $(p99 bare-checks)")
results+=("checks $(run checks "$gatehouse_pid" "$check_url" "$work/check.lua") $(p99 checks)")
results+=("floor $(run floor "$gatehouse_pid" "http://127.0.0.1:$gatehouse_port/healthz") $(p99 floor)")
results+=("opens $(run opens "$gatehouse_pid" "http://127.0.0.1:$gatehouse_port/v1/canaries/bench/podinfo/gates/rollout/open" "$work/open.lua") $(p99 opens)")
rss_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$gatehouse_pid/status")
opened=$(curl -fs "http://127.0.0.1:$gatehouse_port/v1/events?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["id"])')

if [[ -n "${GATEHOUSE_TEST_POSTGRES:-}" ]]; then
    # The same service on PostgreSQL: the database's processes share core 0 with it, and their CPU counts.
    kill "$gatehouse_pid"
    wait "$gatehouse_pid" 2>/dev/null || true
    postmaster=$(head -1 "$GATEHOUSE_TEST_POSTGRES_DATA/postmaster.pid")
    database_processes() { echo "$postmaster $(pgrep -P "$postmaster" | tr '\n' ' ')"; }
    # Backends started later are forked by the postmaster, so they inherit its core.
    for pid in $(database_processes); do taskset -pc "$server_core" "$pid" >/dev/null; done
    MALLOC_ARENA_MAX=2 taskset -c "$server_core" "$binary" serve --host 127.0.0.1 --port "$gatehouse_port" \
        --database "$GATEHOUSE_TEST_POSTGRES" --log-level warning >"$work/gatehouse-pg.log" 2>&1 &
    gatehouse_pid=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$gatehouse_port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fs -X POST "http://127.0.0.1:$gatehouse_port/v1/canaries/bench/podinfo/gates/promotion/open" \
        -d '{"sticky": true, "reason": "benchmark"}' >/dev/null
    taskset -c "$load_core" wrk -t1 -c4 -d2s -s "$work/check.lua" "$check_url" >/dev/null
    database_pids=$(database_processes | tr ' ' ',')
    results+=("pg-checks $(run pg-checks "$gatehouse_pid,$database_pids" "$check_url" "$work/check.lua") $(p99 pg-checks)")
    results+=("pg-opens $(run pg-opens "$gatehouse_pid,$database_pids" "http://127.0.0.1:$gatehouse_port/v1/canaries/bench/podinfo/gates/rollout/open" "$work/open.lua") $(p99 pg-opens)")
    kill "$gatehouse_pid"
    wait "$gatehouse_pid" 2>/dev/null || true
    gatehouse_pid=
    replicas_row=$(scripts/bench-replicas.py "$binary" "$duration" 1700 100000)
fi
results+=("nginx-after $(run nginx-after "$nginx_worker" "http://127.0.0.1:$nginx_port/v1/flagger/confirm-promotion" "$work/check.lua") $(p99 nginx-after)")

python3 - "$connections" "$duration" "$rss_kib" "$start_kib" "$opened" "${results[@]}" <<'PY'
import sys
connections, duration = sys.argv[1:3]
rss, start = int(sys.argv[3]) / 1024, int(sys.argv[4]) / 1024
audit = sys.argv[5]
rows = {}
for line in sys.argv[6:]:
    name, rate, cpu, p99 = line.split()
    rows[name] = (float(rate), float(cpu), p99)
nginx = (rows["nginx-before"][0] + rows["nginx-after"][0]) / 2
print(f"wrk: {connections} connections, 1 thread on core 1; each server on core 0; {duration}s per run, 127.0.0.1")
print("| measure | requests/s | ratio to nginx | ratio to bare Hummingbird | CPU per request | p99 |")
print("|---|---|---|---|---|---|")
labels = {
    "nginx-before": "nginx `return 200`, before",
    "nginx-after": "nginx `return 200`, after",
    "bare-floor": "bare Hummingbird router, `GET /healthz` (a constant)",
    "bare-checks": "bare Hummingbird router, the check's `POST` (a constant)",
    "checks": "checks (`confirm-promotion`, open gate)",
    "floor": "floor: `GET /healthz` (a handler that does nothing)",
    "opens": "durable opens (`gates/rollout/open`)",
    "pg-checks": "checks on PostgreSQL (from memory, after one read of the change counter)",
    "pg-opens": "durable opens on PostgreSQL",
}
# Each Gatehouse measure against the bare router's answer to the same request.
bare_of = {"floor": "bare-floor", "checks": "bare-checks", "pg-checks": "bare-checks"}
for name in labels:
    if name not in rows:
        continue
    rate, cpu, p99 = rows[name]
    bare = f"{rate / rows[bare_of[name]][0]:.2f}×" if name in bare_of else ""
    print(f"| {labels[name]} | {rate:,.0f} | {rate / nginx:.2f}× | {bare} | {cpu:.1f} µs | {p99} ms |")
print(f"peak RSS of the service: {rss:.1f} MiB ({start:.1f} MiB when ready); audit entries written: {audit}")
PY
if [[ -n "${replicas_row:-}" ]]; then
    echo
    echo "| replicas | checks/s | CPU per check (replicas + PostgreSQL) | p99 | answers |"
    echo "|---|---|---|---|---|"
    echo "$replicas_row"
fi
