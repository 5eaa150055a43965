#!/usr/bin/env bash
# A stalled volume, for real: the database lives on a loop-mounted ext4 file system that is frozen
# with fsfreeze while the built binary serves. Checks that need a write must fail closed (503)
# within the storage timeout, /readyz must answer not-ready within a second, the storage metric
# must drop, and after the thaw everything recovers by itself — and no change whose caller got a
# 503 is applied later. Needs root (mount, losetup, fsfreeze); skipped with a note otherwise.
set -euo pipefail

binary=${1:?usage: stalled-volume.sh PATH_TO_GATEHOUSE_BINARY}
if [[ $(id -u) -ne 0 ]] || ! command -v fsfreeze >/dev/null; then
    echo "stalled volume: skipped (needs root and fsfreeze to freeze a loop-mounted file system)"
    exit 0
fi

work=$(mktemp -d)
volume="$work/volume"
mkdir -p "$volume"
cleanup() {
    fsfreeze -u "$volume" 2>/dev/null || true
    kill -9 $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    umount "$volume" 2>/dev/null || umount -l "$volume" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
truncate -s 64M "$work/volume.img"
mkfs.ext4 -q "$work/volume.img"
mount -o loop "$work/volume.img" "$volume"

port=$((20000 + RANDOM % 20000))
base="http://127.0.0.1:$port"
failures=0
passes=0
pass() { passes=$((passes + 1)); }
fail() { failures=$((failures + 1)); echo "FAIL: $*"; }

start() {
    "$binary" serve --host 127.0.0.1 --port "$port" --database "$volume/gatehouse.sqlite" --storage-timeout 2s \
        --maintenance-interval 1s --log-format json >>"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
        curl -fs --max-time 1 "$base/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server did not become ready"; cat "$work/server.log"; exit 1
}

# status METHOD PATH [BODY]: prints the HTTP status, giving up (000) after 8 s.
status() {
    curl -s -o "$work/body" -w '%{http_code}' --max-time 8 -X "$1" "$base$2" ${3:+-d "$3"} || true
}
check() { # gate-hook checksum
    status POST "/v1/flagger/$1" "{\"name\": \"podinfo\", \"namespace\": \"test\", \"phase\": \"Progressing\", \"checksum\": \"$2\"}"
}
steps_left() {
    curl -s --max-time 5 "$base/v1/canaries/test/podinfo" | python3 -c '
import json, sys
gate = json.load(sys.stdin)["gates"]["traffic"]
print(gate.get("remainingSteps") if gate["state"] == "open" else "closed")'
}
expect() { # description wanted got
    if [[ "$2" == "$3" ]]; then pass; else fail "$1: wanted $2, got $3"; fi
}

start
expect "open two traffic steps" 200 "$(status POST /v1/canaries/test/podinfo/gates/traffic/open '{"steps": 2}')"
expect "first step passes" 200 "$(check confirm-traffic-increase rev1)"
expect "one step left" 1 "$(steps_left)"

fsfreeze -f "$volume"
# A check that must write (it uses the last step) cannot commit: 503 within the storage timeout.
started=$(date +%s%N)
expect "a step checked on a frozen volume fails closed" 503 "$(check confirm-traffic-increase rev1)"
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
if ((elapsed_ms < 6000)); then pass; else fail "the check took ${elapsed_ms} ms, beyond the storage timeout"; fi
echo "stalled volume: the check was refused after ${elapsed_ms} ms (storage timeout 2 s)"
expect "an approval given on a frozen volume fails closed" 503 \
    "$(status POST /v1/canaries/test/podinfo/gates/promotion/open '{"reason": "during the freeze"}')"
ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$base/readyz" || echo timeout)
expect "/readyz answers not ready within a second" 503 "$ready"
up=$(curl -s --max-time 2 "$base/metrics" | awk '$1 == "gatehouse_storage_up" {print $2 + 0}')
expect "gatehouse_storage_up drops" 0 "$up"
expect "checks fail closed while storage is stalled" 503 "$(check confirm-promotion rev1)"

fsfreeze -u "$volume"
recovered=no
for _ in $(seq 1 100); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$base/readyz") == 200 ]]; then recovered=yes; break; fi
    sleep 0.2
done
expect "ready again after the thaw, by itself" yes "$recovered"
# The abandoned writes were never applied: the step is still there, the promotion gate still closed.
expect "the step refused with 503 was not spent" 1 "$(steps_left)"
expect "the approval refused with 503 did not take effect" 403 "$(check confirm-promotion rev1)"
expect "the last step passes now" 200 "$(check confirm-traffic-increase rev1)"

kill -TERM "$server"; wait "$server" || true
start
expect "after a restart: the step was spent once" closed "$(steps_left)"
expect "after a restart: the promotion gate is closed" 403 "$(check confirm-promotion rev1)"
if grep -q '"storage cannot answer; checks fail closed until it does"' "$work/server.log" \
    && grep -q 'storage answers again' "$work/server.log"; then pass; else
    fail "the log does not say that storage stalled and recovered"; tail -20 "$work/server.log"
fi

echo "stalled volume: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
