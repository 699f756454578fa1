#!/usr/bin/env bash
# The SUMO bridge's tests (simulator/sumo/tests): the junction mapping on tiny networks, a
# closed-loop run of a few simulated minutes through `traffic sumo`, and the benchmark's parts
# (its delay measure, the RESCO lookup on a fake wheel, max-pressure, the paired comparison),
# the adaptive control's plan switching at a cycle boundary and a few minutes of it, and the
# faults of the loop's inputs (silent detectors, an outage: on the shipped scenario the loop
# under each does no worse than fixed plans).
# Installs what they need into the project's virtual environment (.venv) itself, and builds
# the traffic command.
#
#   bash scripts/test.d/sumo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

venv="$root/.venv"
reqs=simulator/sumo/requirements-test.txt
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cat simulator/sumo/requirements.txt "$reqs" | cmp -s - "$venv/.requirements-sumo-test"; then
  echo "sumo: installing the SUMO packages and pytest ($reqs)"
  (cd simulator/sumo && "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements-test.txt)
  cat simulator/sumo/requirements.txt "$reqs" > "$venv/.requirements-sumo-test"
fi
if [ -z "${TRAFFIC_BIN:-}" ]; then
  CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}" cargo build --quiet --bin traffic
  export TRAFFIC_BIN="$root/target/debug/traffic"
fi
cd simulator/sumo
PYTHONPATH="$root/simulator/sumo" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests
