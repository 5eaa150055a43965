# Shared by the example scripts: where Gatehouse is, and curl that fails loudly on an error answer.
GATEHOUSE_URL=${GATEHOUSE_URL:-http://127.0.0.1:8080}
call() { curl -sS --fail-with-body -H 'Content-Type: application/json' "$@"; echo; }
