#!/usr/bin/env python3
"""How many bytes the merge's output tables take in the archive: the measurement behind the
"merge's tables" rows of the README's archive cost table (infra/cost.py reads it from
infra/measured.json, `archive_outputs`).

    python infra/outputs_size.py --traffic target/debug/traffic --intersections 1000 [--record]

Runs `traffic local` for two simulated hours over a city of N intersections (no API, as fast as
it goes) into a temporary data directory, then sums the files the merge wrote per table and
window length (`<data dir>/archive/<table>/dt=…/[<writer>-]<length>-<start>.parquet`: exactly
the objects the merge puts in the archive bucket, the same bytes). Prints one JSON object:
objects and mean bytes an object per table and length (`plan_changes` and `alarm_events` are
written only for windows where something changed: their objects are fewer than the windows),
and the bytes a closed window takes per intersection in `window_intersections` (the table that
grows with the city). `--record` stores it in infra/measured.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLES = ("windows", "window_intersections", "window_rankings", "window_plans", "plan_changes", "alarm_events")
LENGTH = re.compile(r"(?:^|-)(\d+[mhd])-\d{8}T")


def sizes(archive: Path) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for table in TABLES:
        by_length: dict[str, list[int]] = {}
        for f in sorted((archive / table).rglob("*.parquet")):
            m = LENGTH.search(f.name)
            length = m.group(1) if m else f.name
            by_length.setdefault(length, []).append(f.stat().st_size)
        out[table] = {
            length: {"objects": len(s), "mean_bytes": round(sum(s) / len(s), 1)} for length, s in sorted(by_length.items())
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traffic", default="target/debug/traffic")
    ap.add_argument("--intersections", type=int, default=1000)
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [a.traffic, "local", "--intersections", str(a.intersections), "--duration", "2h", "--speedup", "max",
             "--no-api", "--status", "off", "--data-dir", tmp],
            check=True, stdout=subprocess.DEVNULL,
        )
        measured = sizes(Path(tmp) / "archive")
    quarters = measured["window_intersections"].get("15m", {})
    result = {
        "intersections": a.intersections,
        "tables": measured,
        "window_intersections_bytes_per_intersection_15m": round(quarters.get("mean_bytes", 0) / a.intersections, 2),
    }
    print(json.dumps(result))
    if a.record:
        path = HERE / "measured.json"
        data = json.loads(path.read_text())
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        data["archive_outputs"] = {
            "command": f"python infra/outputs_size.py --traffic {a.traffic} --intersections {a.intersections} --record",
            "commit": commit,
            "writer": "traffic_tables (parquet 59, Snappy), the merge's own encoder",
            "result": result,
        }
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
