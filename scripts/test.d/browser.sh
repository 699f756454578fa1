#!/usr/bin/env bash
# The dashboard in a real browser. Starts `traffic local` (target/debug/traffic, the workspace's
# default target directory, as CI builds it) on a free 127.0.0.1 port with a fresh data
# directory and a random API token, drives the page in Debian's headless Chromium through
# playwright-core (tests/browser: no browser download), checks through the API that a repair and
# a create made in the page reached the store, and saves docs/dashboard.png.
#
#   bash scripts/test.d/browser.sh                       against `traffic local`
#   TRAFFIC_BROWSER_SERVER=example bash scripts/test.d/browser.sh
#                                                        against the api crate's dev server
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh

if ! command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null 2>&1; then
  echo "browser test: ${CHROMIUM:-/usr/bin/chromium} is missing (apt-get install chromium)" >&2
  exit 1
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --silent --no-audit --no-fund)
fi

# CI builds in the workspace's target directory; a developer may point CARGO_TARGET_DIR elsewhere.
target_dir=${CARGO_TARGET_DIR:-target}
case "${TRAFFIC_BROWSER_SERVER:-local}" in
  local)
    build_cli
    server=("$TRAFFIC_BIN" local) ;;
  example)
    cargo build --quiet -p api --example serve
    server=("$target_dir/debug/examples/serve") ;;
  *) echo "TRAFFIC_BROWSER_SERVER must be local or example" >&2; exit 2 ;;
esac

port=$(free_port)
# Never starting with '-' (which a command line would take for an option: 1 run in 64).
token=t$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
data=$(mktemp -d)
log="$root/target/browser-server.log"
mkdir -p "$root/target"
pid=""
cleanup() {
  stop_server "$pid"
  rm -rf "$data"
}
trap cleanup EXIT INT TERM

"${server[@]}" --listen "127.0.0.1:$port" --api-token "$token" --data-dir "$data" \
  --speedup 600 --intersections 20 >"$log" 2>&1 &
pid=$!

base="http://127.0.0.1:$port"
wait_for "browser test: the server" "$base/api/config" "$pid" "$log" 60 || exit 1

status=0
(cd tests/browser && BASE_URL="$base" API_TOKEN="$token" SCREENSHOT="$root/docs/dashboard.png" \
  timeout 600 node --test --test-reporter=spec dashboard.test.mjs) || status=$?
if [ "$status" -ne 0 ]; then
  echo "browser test failed; the server's log ($log) ends with:" >&2
  tail -n 40 "$log" >&2
  # The process's own log (API writes, conflicts, warnings) goes with the data directory: keep it.
  if [ -f "$data/traffic.log" ]; then
    cp "$data/traffic.log" "$root/target/browser-traffic.log"
    echo "its traffic.log, kept as target/browser-traffic.log; its warnings, errors and writes:" >&2
    grep -E 'WARN|ERROR|control set|conflict|409|412' "$data/traffic.log" | tail -n 40 >&2
  fi
fi
exit "$status"
