#!/usr/bin/env bash
# Open a gate: open-gate.sh GATE NAMESPACE NAME ['{"reason": "…", "ttl": "2h", "steps": 3, "sticky": true}']
set -euo pipefail
. "$(dirname "$0")/common.sh"
body=${4:-'{}'}
call -X POST "$GATEHOUSE_URL/v1/canaries/$2/$3/gates/$1/open" -d "$body"
