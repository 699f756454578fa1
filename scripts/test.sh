#!/usr/bin/env bash
# The whole test suite, from a fresh clone: checks the machine's prerequisites and installs
# what the tests need (scripts/prereqs.sh: cargo-nextest, Chromium; scripts/duckdb.sh: DuckDB's
# library for the archive's SQL engine; scripts/venv.sh: a Python
# virtual environment with the AWS emulators and the template linter; browser.sh installs the
# browser driver, sumo.sh the SUMO packages),
# starts moto on 127.0.0.1, runs every test, and stops the emulator whatever happens. The
# scripts in scripts/test.d run last: the API's contract (Schemathesis, api-contract.sh), the
# browser test (browser.sh), the independent count of DynamoDB's capacity units against
# DynamoDB's sizing rules (capacity.sh), the build AWS runs and the deployed stack on MiniStack
# (deployed.sh, which runs scripts/lambda-build.sh and scripts/deployed-e2e.sh), the template
# checks (infra.sh), the prerequisite checks' own test (prereqs.sh), the control loop in SUMO
# (sumo.sh).
#
#   ./scripts/test.sh            everything
#   AWS_ENDPOINT_URL=http://localhost:4566 ./scripts/test.sh
#                                against an emulator you started (LocalStack): nothing started
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n== %s\n' "$*"; }
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh

# A one-off build of the whole suite gains nothing from incremental caches, which would add
# gigabytes to the target directory (set CARGO_INCREMENTAL=1 to keep them).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# --- What the machine needs ------------------------------------------------------------------
# Installs cargo-nextest (and Chromium, as root with apt) when missing; stops with one line
# naming anything else that is missing and the command that installs it.
groups=(rust python)
if [ -d tests/browser ]; then groups+=(browser); fi
bash scripts/prereqs.sh "${groups[@]}"
# DuckDB's library, which the archive's SQL engine links (adapters/archive).
bash scripts/duckdb.sh

# --- Python tools ---------------------------------------------------------------------------
bash scripts/venv.sh
venv="$root/.venv"
export PATH="$venv/bin:$PATH"

# --- The AWS emulator ----------------------------------------------------------------------
moto_pid=""
cleanup() {
  stop_server "$moto_pid"
}
trap cleanup EXIT INT TERM

if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  mkdir -p "$root/target"
  start_moto "$root/target/moto.log" || exit 1
  log "started moto_server at $AWS_ENDPOINT_URL"
else
  log "using the emulator at $AWS_ENDPOINT_URL"
fi
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-eu-south-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
# Tests that need AWS fail, rather than skip, when they cannot reach it.
export TRAFFIC_REQUIRE_AWS=1

# --- The tests -----------------------------------------------------------------------------
log "cargo fmt --check and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "cargo nextest (unit, property, handler, replay and integration tests)"
# The tests/aws/*.rs tests are #[ignore]d (a plain `cargo test` has no emulator): run them too.
cargo nextest run --workspace --no-fail-fast --run-ignored all

for extra in scripts/test.d/*.sh; do
  [ -e "$extra" ] || continue
  log "$extra"
  bash "$extra"
done
