#!/usr/bin/env bash
# New code for a deployed stack's functions with `cargo lambda deploy`, keeping what the stack
# gave them: each function named is looked up in the stack (its physical name, and its role's
# ARN, by DescribeStackResource: IngestFunction and IngestRole for ingest, and so on), and
# `cargo lambda deploy` uploads target/lambda/<function>/bootstrap (scripts/lambda-build.sh)
# to that function with that role. The function's [package.metadata.lambda.deploy]
# (functions/<function>/Cargo.toml) carries the template's memory, timeout and tracing, and
# merge_env, so the stack's environment (its tables, stream, topic) stays as it is.
#
#   scripts/lambda-build.sh && scripts/lambda-deploy.sh STACK [ingest fault merge api]
#
# Without function names it deploys all four. Credentials and region as for the AWS CLI
# (AWS_PROFILE, AWS_REGION, ...); AWS_ENDPOINT_URL sends both the lookups and cargo-lambda to an
# emulator. LAMBDA_DIR: where the bootstraps are (default target/lambda). Prints, per function,
# one line: the function, its role, and the new code's SHA-256 as Lambda reports it.
#
# Between two CloudFormation deployments this changes only the code: the next `sam deploy`
# deploys what `sam build` built and puts the template's code back (CloudFormation does not
# see an out-of-band code change as drift). A change to the template's memory or timeout goes
# into the function's Cargo.toml too, or cargo lambda deploy sets the old value back.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,21p' "$0"
  exit 2
fi
stack=$1
shift
functions=("$@")
[ ${#functions[@]} -gt 0 ] || functions=(ingest fault merge api)
lambda_dir=${LAMBDA_DIR:-${CARGO_TARGET_DIR:-$root/target}/lambda}

bash scripts/venv.sh
export PATH="$root/.venv/bin:$PATH"

for f in "${functions[@]}"; do
  case "$f" in
    ingest | fault | merge | api) ;;
    *) echo "lambda-deploy: $f is not a function (ingest, fault, merge, api)" >&2; exit 2 ;;
  esac
  if [ ! -f "$lambda_dir/$f/bootstrap" ]; then
    echo "lambda-deploy: $lambda_dir/$f/bootstrap is missing: run scripts/lambda-build.sh" >&2
    exit 1
  fi
  # The stack's function and role, by their logical ids in infra/template.yaml.
  read -r name role < <(python - "$stack" "$f" <<'EOF'
import sys
import boto3

stack, f = sys.argv[1:]
lid = f.capitalize()
cfn = boto3.client("cloudformation")
def physical(logical):
    return cfn.describe_stack_resource(StackName=stack, LogicalResourceId=logical)["StackResourceDetail"]["PhysicalResourceId"]
name = physical(f"{lid}Function")
role = boto3.client("iam").get_role(RoleName=physical(f"{lid}Role"))["Role"]["Arn"]
print(name, role)
EOF
  )
  echo "lambda-deploy: $f -> $name (role $role)" >&2
  # --binary-name: the function's package, whose metadata cargo-lambda reads.
  args=(--binary-name "$f" --lambda-dir "$lambda_dir" --iam-role "$role" --output-format json)
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then args+=(--endpoint-url "$AWS_ENDPOINT_URL"); fi
  cargo lambda deploy "${args[@]}" "$name" >&2
  python - "$name" <<'EOF'
import sys
import boto3

c = boto3.client("lambda").get_function_configuration(FunctionName=sys.argv[1])
print(c["FunctionName"], c["Role"], c["CodeSha256"])
EOF
done
