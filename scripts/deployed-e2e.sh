#!/usr/bin/env bash
# The deployed stack, end to end, on a LocalStack-compatible emulator: the four functions
# built for this host, infra/template.yaml deployed with CloudFormation, `traffic simulate`
# into its stream (one lamp broken on purpose), the scheduled merge, SNS, the HTTP API and its
# JWT authorizer; then the checks of tests/deployed/e2e.py, whose last output line is one JSON
# object. See localstack/README.md for the three emulators it runs on.
#
#   ./scripts/deployed-e2e.sh
#       starts MiniStack (pinned in scripts/requirements-test.txt, installed into .venv) on a
#       free 127.0.0.1 port, and stops it at the end
#   AWS_ENDPOINT_URL=http://localhost:4566 ./scripts/deployed-e2e.sh
#       uses the emulator running there (LocalStack 4.4 with Docker, or a current LocalStack
#       with LOCALSTACK_AUTH_TOKEN): starts nothing, deletes its stack at the end
#
# Environment: TRAFFIC_E2E_ARGS adds options to tests/deployed/e2e.py (--periods, --speedup,
# --merge-schedule, --wait, ...: `python tests/deployed/e2e.py --help`); CARGO_TARGET_DIR as
# for cargo. The functions are dev-profile binaries sharing the test build's dependencies (a
# release build of the AWS SDK costs about ten minutes on two cores), zipped as `bootstrap`.
# LAMBDA_DIR (cargo-lambda's target/lambda, from scripts/lambda-build.sh): after the checks,
# scripts/lambda-deploy.sh deploys those bootstraps to the stack's four functions with `cargo
# lambda deploy`, and the run checks that only their code changed (scripts/test.d/deployed.sh
# sets it; those bootstraps may be arm64, which the emulator does not run, hence last).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
started=$(date +%s)

bash scripts/prereqs.sh rust python
bash scripts/duckdb.sh
bash scripts/venv.sh
py="$root/.venv/bin/python"

# The functions and the CLI, for this host, in the workspace's target directory. Built with the
# test build's selection (every member, its tests too), so that cargo resolves the same features
# and reuses every dependency the tests compiled: after the test command's nextest run only the
# ingest, fault and merge executables are left to link (11 s here). `cargo build -p ingest ...`
# alone resolves fewer features and compiles the AWS SDK a second time.
target_dir=${CARGO_TARGET_DIR:-$root/target}
echo "deployed-e2e: cargo build --workspace --bins --tests" >&2
cargo build --quiet --workspace --bins --tests

work=$(mktemp -d "${TMPDIR:-/tmp}/deployed-e2e.XXXXXX")
emulator_pid=""
cleanup() {
  if [ -n "$emulator_pid" ]; then
    kill "$emulator_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$emulator_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-eu-south-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
extra=()
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  version=$("$py" -c 'from importlib.metadata import version; print(version("ministack"))')
  port=$(free_port)
  endpoint="http://127.0.0.1:$port"
  log="$root/target/ministack.log"
  mkdir -p "$root/target"
  echo "deployed-e2e: starting MiniStack $version on $endpoint (log: $log)" >&2
  # AWS_ENDPOINT_URL pointing at itself: MiniStack hands it to the functions it runs. AUTH=true:
  # each function runs under a session of its own execution role and every call it makes is
  # checked against the role's policies (a permission missing from the template fails the
  # run). Its state, code caches and temporary files stay in this run's directory, and the
  # listeners it would open on fixed ports (IoT's MQTT on 8883, SFTP) stay closed.
  (
    cd "$work"
    exec env GATEWAY_PORT="$port" BIND_HOST=127.0.0.1 AWS_ENDPOINT_URL="$endpoint" AUTH=true \
      MINISTACK_REGION="$AWS_REGION" TMPDIR="$work" STATE_DIR="$work/state" S3_DATA_DIR="$work/s3" \
      IOT_MTLS_ENABLED=0 SFTP_ENABLED=0 "$root/.venv/bin/ministack"
  ) >"$log" 2>&1 &
  emulator_pid=$!
  wait_for "deployed-e2e: MiniStack" "$endpoint/_ministack/health" "$emulator_pid" "$log" 30 || exit 1
  # MiniStack does every part (the API, its JWT authorizer, Cognito): nothing may go unchecked.
  extra+=(--emulator "ministack $version, AUTH=true (IAM policies enforced)" --strict)
else
  endpoint=$AWS_ENDPOINT_URL
  echo "deployed-e2e: using the emulator at $endpoint" >&2
  extra+=(--emulator "$endpoint" --teardown)
fi

if [ -n "${LAMBDA_DIR:-}" ]; then
  extra+=(--lambda-deploy "$LAMBDA_DIR")
fi

status=0
# shellcheck disable=SC2086 # TRAFFIC_E2E_ARGS is a list of options
"$py" tests/deployed/e2e.py --endpoint "$endpoint" --region "$AWS_REGION" \
  --bin-dir "$target_dir/debug" --traffic "$target_dir/debug/traffic" --work-dir "$work/run" \
  "${extra[@]}" ${TRAFFIC_E2E_ARGS:-} >"$work/report.json" || status=$?
if [ "$status" -ne 0 ] && [ -n "$emulator_pid" ]; then
  echo "deployed-e2e: failed; MiniStack's log ($log) ends with:" >&2
  grep -v 'hypercorn.access' "$log" | tail -n 60 >&2 || true
fi
echo "deployed-e2e: $(($(date +%s) - started)) s in all, the build included" >&2
# The report is the last line of output.
tail -n 1 "$work/report.json"
exit "$status"
