#!/usr/bin/env bash
# Ask Flagger to roll back the current rollout: rollback.sh NAMESPACE NAME [REASON] [force]
set -euo pipefail
. "$(dirname "$0")/common.sh"
force=false
[[ "${4:-}" == "force" ]] && force=true
call -X POST "$GATEHOUSE_URL/v1/canaries/$1/$2/rollback" -d "{\"reason\": \"${3:-rollback by hand}\", \"force\": $force}"
