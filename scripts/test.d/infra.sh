#!/usr/bin/env bash
# The infrastructure template (infra/template.yaml), checked three ways:
#
#  1. cfn-lint on the SAM template and on its transform (plain CloudFormation): no error and no
#     warning (cfn-lint exits 2 for errors, 4 for warnings, 8 for informational notes, or'ed);
#  2. tests/infra/test_template.py: the template's functions, environments, roles, event
#     sources, routes and tables against the Rust code (and docs/aws.md), then a smoke
#     deployment of the transformed template to the emulator's CloudFormation;
#  3. that deployment needs AWS_ENDPOINT_URL (scripts/test.sh starts moto_server and sets it);
#     run alone, this script starts its own moto_server when it can, and stops it at the end;
#  4. infra/cost.py --check: the README's cost table is what infra/cost.py prints from the
#     recorded `traffic aws-measure` runs, and the runs that priced Lambda by the shared model
#     printed the same dollars.
#
#   bash scripts/test.d/infra.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh

# The project's virtual environment (scripts/test.sh puts it first on PATH).
py=python
if ! "$py" -c 'import cfnlint, samtranslator, boto3' 2>/dev/null; then
  py="$root/.venv/bin/python"
  if ! "$py" -c 'import cfnlint, samtranslator, boto3' 2>/dev/null; then
    echo "infra: needs cfn-lint, aws-sam-translator and boto3: run ./scripts/test.sh, or" >&2
    echo "       pip install -r scripts/requirements-test.txt into the Python you run this with" >&2
    exit 1
  fi
fi
bin=$(dirname "$("$py" -c 'import sys; print(sys.executable)')")

lint() {
  local rc=0
  "$bin/cfn-lint" "$@" || rc=$?
  if [ $((rc & 6)) -ne 0 ]; then
    echo "infra: cfn-lint found errors or warnings in $* (exit $rc)" >&2
    exit 1
  fi
}

tmp=$(mktemp -d)
moto_pid=""
cleanup() {
  stop_server "$moto_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "infra: cfn-lint infra/template.yaml"
lint infra/template.yaml

echo "infra: cfn-lint of the SAM transform"
"$py" infra/transform.py --bucket traffic-code-bucket --region "${AWS_REGION:-eu-south-1}" >"$tmp/transformed.json"
lint "$tmp/transformed.json"

if [ -z "${AWS_ENDPOINT_URL:-}" ] && [ -x "$bin/moto_server" ]; then
  PATH="$bin:$PATH" start_moto "$tmp/moto.log" || exit 1
  echo "infra: started moto_server at $AWS_ENDPOINT_URL for the smoke deployment"
fi

echo "infra: tests/infra/test_template.py"
"$py" tests/infra/test_template.py -v

echo "infra: infra/cost.py --check"
"$py" infra/cost.py --check
