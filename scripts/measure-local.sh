#!/usr/bin/env bash
# Figures of `traffic local` (release build): sustained readings/s and peak memory for a
# 10,000-intersection city, and the mean delay per vehicle over one simulated day under fixed
# and under Webster timings. Prints a Markdown table.
#
#   ./scripts/measure-local.sh [intersections-for-throughput] [hours-for-throughput]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
hours=${2:-2}
bash scripts/duckdb.sh
cargo build --release --quiet
bin=target/release/traffic
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

"$bin" local --data-dir "$tmp/big" --intersections "$n" --speedup max --duration "${hours}h" \
  --provisional shortest --merge-every 15m --status none >"$tmp/big.json"
"$bin" local --data-dir "$tmp/fixed" --speedup max --duration 24h --control fixed --status none >"$tmp/fixed.json"
"$bin" local --data-dir "$tmp/webster" --speedup max --duration 24h --control webster --status none >"$tmp/webster.json"

echo "| run | readings | wall s | readings/s | peak RSS MiB | mean delay s/veh |"
echo "|---|---|---|---|---|---|"
for r in big fixed webster; do
  f="$tmp/$r.json"
  case $r in
    big) label="$n intersections, ${hours} h simulated, Webster";;
    fixed) label="50 intersections, 24 h, fixed timings";;
    webster) label="50 intersections, 24 h, Webster timings";;
  esac
  printf '| %s | %s | %.1f | %.0f | %.0f | %.2f |\n' "$label" "$(field "$f" readings)" \
    "$(field "$f" wall_s)" "$(field "$f" readings_per_s)" "$(field "$f" peak_rss_mib)" \
    "$(field "$f" mean_delay_s_per_vehicle)"
done
