#!/usr/bin/env bash
# The API's contract, fuzzed: Schemathesis (pinned in scripts/requirements-test.txt) generates
# requests from the OpenAPI document that `traffic local` serves, for every operation it lists,
# valid ones and invalid ones, and checks every answer against the document (all checks: no
# server error, documented status codes, headers, content types and schemas, invalid requests
# refused, valid ones accepted, ...). Writes carry the operator's token as a bearer header.
# Starts `traffic local` (target/debug/traffic) on a free 127.0.0.1 port with a fresh data
# directory and a random token, and stops it whatever happens. It runs Schemathesis twice: with
# the hooks and settings of tests/contract/ (the rules no schema states), then plainly, on the
# document alone (below). Any failure fails the script.
#
#   bash scripts/test.d/api-contract.sh
#   CONTRACT_EXAMPLES=200 CONTRACT_SEED=7 bash scripts/test.d/api-contract.sh
#                                 more examples per operation, another seed
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh

bash scripts/venv.sh
schemathesis="$root/.venv/bin/schemathesis"
build_cli

# Bounded: this many generated cases per operation and phase, from a fixed seed.
examples=${CONTRACT_EXAMPLES:-25}
seed=${CONTRACT_SEED:-20261130}

port=$(free_port)
token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
data=$(mktemp -d)
work=$(mktemp -d)
out="$root/target/api-contract-server.out"
log="$root/target/api-contract-server.log"
report="$root/target/api-contract"
mkdir -p "$root/target"
rm -rf "$report"
pid=""
cleanup() {
  stop_server "$pid"
  # The server's log outlives its data directory.
  cp "$data/traffic.log" "$log" 2>/dev/null || true
  rm -rf "$data" "$work"
}
trap cleanup EXIT INT TERM

# A small city at the default pace: windows close, alarms and retimings happen while the
# requests run, as for an operator.
# The token goes in the environment: a random one may start with '-', which an argument
# parser would take for an option.
TRAFFIC_API_TOKEN="$token" "$TRAFFIC_BIN" local --listen "127.0.0.1:$port" \
  --data-dir "$data" --intersections 10 >"$out" 2>&1 &
pid=$!

base="http://127.0.0.1:$port"
wait_for "api contract: the server" "$base/api/config" "$pid" "$out" 60 || exit 1

status=0
# Run from a scratch directory so that nothing (a .hypothesis cache) lands in the worktree.
(cd "$work" && PYTHONPATH="$root/tests/contract" SCHEMATHESIS_HOOKS=contract_hooks \
  TRAFFIC_CONTRACT_BASE_URL="$base" timeout 900 \
  "$schemathesis" --config-file "$root/tests/contract/schemathesis.toml" run "$base/api/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --max-examples "$examples" \
  --seed "$seed" \
  --generation-database none \
  --workers 1 \
  --request-timeout 10 \
  --no-color \
  --report junit --report-dir "$report") || status=$?
if [ "$status" -ne 0 ]; then
  echo "api contract: schemathesis found failures (report: $report; the server's log: $log)" >&2
fi

# The plain run: the document alone, as any client reads it. No hooks module, no settings file,
# every check, 60 examples per operation from the fixed seed, whatever CONTRACT_EXAMPLES says.
# These operations depend on rules no schema can state (the hooks' module lists them; and an
# `If-Match` naming a version the intersection no longer has is a 412, which no value but the
# one just read is sure to avoid): here they get the requests Schemathesis makes invalid, one for
# each constraint of the document (the coverage phase; its other phases mix in valid requests),
# each of which must be refused. Every other operation gets every kind of request: what the document
# allows must be accepted, what it does not must be refused.
beyond_schema=(createIntersection replaceIntersection patchIntersection deleteIntersection
  addLight replaceLight deleteLight replacePhases setControl listIntersections listTimings
  recentResults)
plain() {
  (cd "$work" && env -u SCHEMATHESIS_HOOKS timeout 600 "$schemathesis" run "$base/api/openapi.json" \
    --checks all \
    --header "Authorization: Bearer $token" \
    --max-examples 60 \
    --seed 20261130 \
    --generation-database none \
    --workers 1 \
    --request-timeout 10 \
    --no-color \
    "$@")
}
others=()
these=()
for op in "${beyond_schema[@]}"; do
  others+=(--exclude-operation-id "$op")
  these+=(--include-operation-id "$op")
done
plain_status=0
plain "${others[@]}" --report junit --report-dir "$report/plain" || plain_status=$?
plain --mode negative --phases coverage "${these[@]}" --report junit --report-dir "$report/plain-negative" ||
  plain_status=$?
if [ "$plain_status" -ne 0 ]; then
  echo "api contract: the plain run (no hooks, no settings) found failures (report: $report/plain*; the server's log: $log)" >&2
  status=$plain_status
fi
exit "$status"
