#!/usr/bin/env bash
# Deploys infra/template.yaml, the same template as AWS gets, to a running LocalStack.
#
#   docker compose -f localstack/docker-compose.yml up -d       (LocalStack, with Docker)
#   bash localstack/deploy-template.sh [stack-name]             (default: traffic)
#
# What it does, without the SAM CLI:
#  1. builds the four function binaries with cargo-lambda, zipped (target/lambda/<bin>/bootstrap.zip);
#  2. uploads them to a bucket in LocalStack;
#  3. runs the SAM transform locally (infra/transform.py: aws-sam-translator, as in the tests);
#  4. `cloudformation deploy`s the result and prints the stack's outputs.
#
# With the SAM CLI instead: `pip install aws-sam-cli-local`, then from the repository root
# `samlocal build -t infra/template.yaml --beta-features` and `samlocal deploy --guided`
# (LocalStack runs the SAM transform itself).
#
# Needs: cargo-lambda (pip install cargo-lambda), the AWS CLI, and Python with
# scripts/requirements-test.txt installed (./scripts/test.sh makes .venv). Not exercised by the
# test command (there is no Docker engine on CI machines). The checked path is
# scripts/deployed-e2e.sh: the same transform and deployment, then the stack driven and checked,
# on MiniStack in the test command or on LocalStack with AWS_ENDPOINT_URL (localstack/README.md).
#
# LocalStack notes (localstack/docker-compose.yml sets the two variables named here):
#  - it must run S3 (the function zips are uploaded there) besides the services the stack uses;
#  - resource types an edition lacks (API Gateway v2 and Cognito are not in every edition) are
#    skipped only with CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES=1 (LocalStack has announced that
#    it will otherwise fail the deployment);
#  - the functions are arm64: on an x86_64 host this script builds x86_64 binaries instead, and
#    LAMBDA_IGNORE_ARCHITECTURE=1 makes LocalStack run them on the host's architecture.
#    LocalStack gives functions AWS_ENDPOINT_URL, so the SDK in them reaches it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

stack=${1:-traffic}
endpoint=${AWS_ENDPOINT_URL:-http://localhost:4566}
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-eu-south-1}}
bucket=${TRAFFIC_CODE_BUCKET:-traffic-code}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
aws() { command aws --endpoint-url "$endpoint" --region "$region" "$@"; }

py=python3
[ -x "$root/.venv/bin/python" ] && py="$root/.venv/bin/python"

case "$(uname -m)" in
  aarch64 | arm64) arch=--arm64 ;;
  *)
    arch=--x86-64
    echo "deploy-template: x86_64 host: building x86_64 binaries (LocalStack needs LAMBDA_IGNORE_ARCHITECTURE=1)" >&2
    ;;
esac

bins=$("$py" -c 'import sys; sys.path.insert(0, "infra"); import transform as t; print(" ".join(sorted(t.binaries(t.load()).values())))')
pkgs=()
for b in $bins; do pkgs+=(-p "$b"); done
cargo lambda build --release "$arch" "${pkgs[@]}" --output-format zip

target_dir=$(cargo metadata --format-version 1 --no-deps | "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
if ! aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
  aws s3 mb "s3://$bucket" >/dev/null || {
    echo "deploy-template: cannot create s3://$bucket: does LocalStack run S3 (SERVICES)?" >&2
    exit 1
  }
fi
for b in $bins; do
  aws s3 cp --quiet "$target_dir/lambda/$b/bootstrap.zip" "s3://$bucket/$b.zip"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" infra/transform.py --bucket "$bucket" --region "$region" --account 000000000000 >"$tmp/template.json"

# Parameters as for AWS (README, "Deploying to AWS"); pass more as KEY=VALUE after the name.
aws cloudformation deploy \
  --stack-name "$stack" \
  --template-file "$tmp/template.json" \
  --capabilities CAPABILITY_IAM \
  --parameter-overrides StreamShardCount=2 "${@:2}"
aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].Outputs' --output table
