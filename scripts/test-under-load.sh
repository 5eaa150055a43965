#!/usr/bin/env bash
# Runs `swift test` RUNS times in a row while two busy processes keep both cores loaded, as on a
# busy CI machine; prints each run's result and time, and exits non-zero if any run failed.
#
#   scripts/test-under-load.sh [RUNS]
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
runs=${1:-10}
swift build --build-tests >/dev/null 2>&1 || { echo "the tests do not build"; exit 1; }
busy=()
for _ in $(seq 1 "$(nproc)"); do
    (while :; do :; done) &
    busy+=($!)
done
trap 'kill "${busy[@]}" 2>/dev/null' EXIT
echo "load: ${#busy[@]} busy loops on $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
failed=0
for run in $(seq 1 "$runs"); do
    started=$(date +%s)
    if swift test --skip-build >"/tmp/test-under-load-$run.log" 2>&1; then
        result=passed
    else
        result=FAILED
        failed=$((failed + 1))
        grep -E "✘" "/tmp/test-under-load-$run.log" | head -5
    fi
    summary=$(grep -E "Test run with" "/tmp/test-under-load-$run.log" | tail -1)
    echo "run $run: $result in $(($(date +%s) - started)) s, load $(cut -d' ' -f1 /proc/loadavg): ${summary#*✔ }"
done
echo "$((runs - failed)) of $runs runs passed"
exit $((failed > 0))
