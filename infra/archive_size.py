#!/usr/bin/env python3
"""How many bytes a reading takes in the archive: the measurement behind the archive's rows of
the README's cost table (infra/cost.py reads it from infra/measured.json, `archive`).

    python infra/archive_size.py READINGS.jsonl --intersections N [--buffer-seconds 300] [--record]

READINGS.jsonl is what `traffic simulate --record` wrote (one reading a line, in the order they
were put). Firehose writes one Parquet object per buffer: the readings of `--buffer-seconds`
(ArchiveBufferSeconds) at a reading per light per minute, four lights an intersection, so
N × 4 × buffer / 60 readings an object. Each chunk of the file is written as such an object
with the readings table's columns (infra/template.yaml, ReadingsArchiveTable), Snappy-compressed,
by DuckDB: not the Parquet writer Firehose runs (Hive's ParquetSerDe), so the size is close to
what S3 will hold, not equal. Prints one JSON object; `--record` also stores it in
infra/measured.json. Needs duckdb (scripts/requirements-test.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = (
    "intersection_id VARCHAR, light INTEGER, ts TIMESTAMP, vehicles INTEGER, mean_speed_kmh DOUBLE, "
    "lamps STRUCT(red VARCHAR, yellow VARCHAR, green VARCHAR), lat DOUBLE, lon DOUBLE"
)


def parquet_bytes(rows: list[dict]) -> int:
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "object.parquet")
        con = duckdb.connect()
        con.execute(f"CREATE TABLE t ({COLUMNS})")
        con.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [[r["intersection_id"], r["light"], r["ts"], r["vehicles"], r["mean_speed_kmh"], r["lamps"], r.get("lat"), r.get("lon")] for r in rows],
        )
        con.execute(f"COPY t TO '{path}' (FORMAT PARQUET, COMPRESSION SNAPPY)")
        con.close()
        return os.path.getsize(path)


def measure(path: Path, intersections: int, buffer_s: int) -> dict:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    readings = [json.loads(line) for line in lines]
    per_object = intersections * 4 * buffer_s // 60
    chunks = [readings[i : i + per_object] for i in range(0, len(readings), per_object)]
    full = [c for c in chunks if len(c) == per_object] or chunks
    sizes = [parquet_bytes(c) for c in full]
    return {
        "readings": sum(len(c) for c in full),
        "intersections": intersections,
        "buffer_seconds": buffer_s,
        "readings_per_object": per_object,
        "objects": len(full),
        "json_bytes_per_reading": round(sum(len(line.encode()) for line in lines) / len(lines), 1),
        "parquet_bytes_per_reading": round(sum(sizes) / sum(len(c) for c in full), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("readings", type=Path)
    p.add_argument("--intersections", type=int, required=True)
    p.add_argument("--buffer-seconds", type=int, default=300)
    p.add_argument("--record", action="store_true", help="store the result in infra/measured.json")
    p.add_argument("--command", default="", help="the command that made READINGS (recorded with --record)")
    a = p.parse_args()
    result = measure(a.readings, a.intersections, a.buffer_seconds)
    print(json.dumps(result))
    if a.record:
        measured = json.loads((HERE / "measured.json").read_text())
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
        measured["archive"] = {
            "command": f"python infra/archive_size.py READINGS.jsonl --intersections {a.intersections} --buffer-seconds {a.buffer_seconds}",
            "readings_from": a.command,
            "commit": commit,
            "writer": "DuckDB " + __import__("duckdb").__version__ + ", Snappy",
            "result": result,
        }
        (HERE / "measured.json").write_text(json.dumps(measured, indent=2) + "\n")


if __name__ == "__main__":
    main()
