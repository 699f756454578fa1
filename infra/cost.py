#!/usr/bin/env python3
"""What a million readings cost on the deployed template: the arithmetic behind the README's
table ("Deploying to AWS", "What it costs"). Prints that table.

    python3 infra/cost.py

Inputs:

- the DynamoDB capacity units and requests per reading, and the function invocations per
  reading, from measurements: `traffic aws-measure` runs recorded in infra/measured.json (the
  command, the commit, the emulator and its JSON line). The units are computed by the adapter
  from the items it reads and writes, by DynamoDB's sizing rules (adapters/aws/src/capacity.rs),
  with the template's default settings;
- the prices, from infra/prices.json (the table `traffic aws-measure` reads too);
- a reading per light per minute, four lights per intersection (simulator/src/lib.rs);
- Kinesis: the template's shards for the whole time a million readings take to arrive, and a
  PUT payload unit per reading;
- a city of 10,000 intersections, when no run measured one, is priced with the units, requests
  and invocations per reading of the largest measured run (labelled so): per reading, the delta
  state, fault's lamp reads and the merge's retiming do not grow with the city, and batches
  fill better, so this overstates it a little; only Kinesis' shard-hours are recomputed;
- Lambda durations: estimates, since the emulator's round trips are not AWS's: an invocation
  of `ingest` or `fault` is taken as 0.15 s plus its fold (1.0 M readings/s on a whole vCPU,
  docs/state.md), a merge run as 1 s plus reading and writing its items at 50 MB/s.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRICES = json.loads((HERE / "prices.json").read_text())
MEASURED = json.loads((HERE / "measured.json").read_text())

LIGHTS = 4
MEMORY_MB = {"ingest": 512, "fault": 256, "merge": 2048}
VCPU_PER_MB = 1 / 1769  # Lambda: one vCPU at 1,769 MB


def readings_per_hour(intersections: int) -> float:
    return intersections * LIGHTS * 60


def costs(run: dict) -> dict[str, float]:
    """Dollars per million readings, by item, from one measurement."""
    m = run["result"]
    readings = m["readings"]
    per_million = 1e6 / readings
    fns = m["by_function"]
    out: dict[str, float] = {}
    hours = 1e6 / readings_per_hour(m["intersections"])
    out["Kinesis (shards)"] = m["shards"] * hours * PRICES["kinesis_shard_hour"]
    out["Kinesis (PUT units)"] = 1e6 * PRICES["kinesis_put_unit"]
    for name in ("ingest", "fault", "merge"):
        f = fns[name]
        out[f"DynamoDB {name} writes"] = per_million * f["write_units"] * PRICES["ddb_wru"]
        out[f"DynamoDB {name} reads"] = per_million * f["read_units"] * PRICES["ddb_rru"]
    for name in ("ingest", "fault", "merge"):
        f = fns[name]
        calls = f["invocations"] * per_million
        if name == "merge":
            bytes_moved = (f["read_units"] * 4096 + f["write_units"] * 1024) / max(1, f["invocations"])
            seconds = 1.0 + bytes_moved / 50e6
        else:
            per_call = readings / max(1, f["invocations"])
            seconds = 0.15 + per_call / 1.0e6 / min(1.0, MEMORY_MB[name] * VCPU_PER_MB)
        gb_s = calls * seconds * MEMORY_MB[name] / 1024
        out[f"Lambda {name}"] = calls * PRICES["lambda_request"] + gb_s * PRICES["lambda_gb_s_arm"]
    return out


def shards(n: int) -> str:
    """`1 shard`, `2 shards`."""
    return f"{n} shard" if n == 1 else f"{n} shards"


EXTRAPOLATE_TO = 10_000


def columns() -> list[tuple[dict, str]]:
    """The measured runs, and a 10,000-intersection city from the largest if none measured one."""
    runs = MEASURED["runs"]
    out = [
        (r, f"{r['result']['intersections']:,} intersections, {shards(r['result']['shards'])}, {r['result']['minutes']} min")
        for r in runs
    ]
    if not any(r["result"]["intersections"] == EXTRAPOLATE_TO for r in runs):
        base = max(runs, key=lambda r: (r["result"]["intersections"], r["result"]["minutes"]))
        scaled = dict(base, result=dict(base["result"], intersections=EXTRAPOLATE_TO))
        out.append(
            (
                scaled,
                f"{EXTRAPOLATE_TO:,} intersections, {shards(base['result']['shards'])} "
                f"(per reading as the {base['result']['intersections']:,} × {base['result']['minutes']} min run)",
            )
        )
    return out


def table() -> str:
    cols = columns()
    runs = [r for r, _ in cols]
    results = [(r, costs(r)) for r in runs]
    keys = list(results[0][1])
    head = [h for _, h in cols]
    rows = ["| per million readings | " + " | ".join(head) + " |"]
    rows.append("|---" * (len(runs) + 1) + "|")
    rows.append(
        "| a million readings arrive in | "
        + " | ".join(f"{1e6 / readings_per_hour(r['result']['intersections']):.2f} h" for r in runs)
        + " |"
    )
    rows.append(
        "| DynamoDB write / read units per 1,000 readings | "
        + " | ".join(
            f"{r['result']['write_units_per_1000_readings']:.1f} / {r['result']['read_units_per_1000_readings']:.1f}"
            for r in runs
        )
        + " |"
    )
    rows.append(
        "| DynamoDB write / read requests per 1,000 readings | "
        + " | ".join(
            f"{1000 * r['result']['write_requests'] / r['result']['readings']:.1f} / "
            f"{1000 * r['result']['read_requests'] / r['result']['readings']:.1f}"
            for r in runs
        )
        + " |"
    )
    for k in keys:
        rows.append(f"| {k} | " + " | ".join(f"${c[k]:.4f}" for _, c in results) + " |")
    rows.append("| **total** | " + " | ".join(f"**${sum(c.values()):.3f}**" for _, c in results) + " |")
    per_month = []
    for r, c in results:
        millions = readings_per_hour(r["result"]["intersections"]) * 24 * 30 / 1e6
        per_month.append(f"${sum(c.values()) * millions:,.0f} ({millions:,.0f} M readings)")
    rows.append("| a 30-day month | " + " | ".join(per_month) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(f"Prices: {PRICES['date']}")
    for r in MEASURED["runs"]:
        print(f"Measured: `{r['command']}` at {r['commit']} on {r['emulator']} ({r['date']})")
    print(table())
