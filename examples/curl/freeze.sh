#!/usr/bin/env bash
# Freeze a namespace (or "all") for a while: freeze.sh NAMESPACE|all REASON [DURATION]
set -euo pipefail
. "$(dirname "$0")/common.sh"
scope=""
[[ "$1" != "all" ]] && scope="\"namespace\": \"$1\", "
call -X POST "$GATEHOUSE_URL/v1/freezes" -d "{$scope\"reason\": \"$2\", \"for\": \"${3:-1h}\"}"
