#!/usr/bin/env bash
# Close a gate: close-gate.sh GATE NAMESPACE NAME [REASON]
set -euo pipefail
. "$(dirname "$0")/common.sh"
call -X POST "$GATEHOUSE_URL/v1/canaries/$2/$3/gates/$1/close" -d "{\"reason\": \"${4:-closed by hand}\"}"
