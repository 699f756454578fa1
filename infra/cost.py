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
  fill better, so this overstates it a little; only Kinesis' shard-hours are recomputed. The
  exception is the lamp summary's parts (`lamp-summary#<p>-of-4`), billed on their size, which grows with the lamps not ok
  (README, "What it costs");
- Lambda durations: estimates, since the emulator's round trips are not AWS's, by the model
  in infra/prices.json (`lambda_duration`, which `traffic aws-measure` prices with too): an
  invocation of `ingest` or `fault` is taken as 0.15 s plus its fold (1.0 M readings/s on a
  whole vCPU, docs/state.md), a merge run as 1 s plus reading and writing its items at 50 MB/s.
  A run that recorded its `billed_seconds` gave its JSON line the same dollars as this table.

The archive (README, "What the archive costs") is priced a month at a time, at 1,000 and
10,000 intersections, from the bytes a reading takes as JSON on the stream and as Parquet in
S3, measured by `infra/archive_size.py` (infra/measured.json, `archive`), and the archive's
prices in infra/prices.json: Firehose's ingestion (each record rounded up to 5 KB) and format
conversion, its dynamic partitioning (the JSON bytes, and an object per ArchiveBufferSeconds),
S3's PUTs and storage (a month of readings: in Standard its first 30 days, in Standard-IA to a
year, in Glacier Instant Retrieval after, as the lifecycle rules' defaults move it) and Athena
(each of the named queries once a day over the last 30 days, scanning every column of them: an
upper bound, since Parquet lets it read only the columns a query names).

`python3 infra/cost.py --check` (run by the infra tests) checks that, and that the README's
tables are the ones this prints.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRICES = json.loads((HERE / "prices.json").read_text())
MEASURED = json.loads((HERE / "measured.json").read_text())

LIGHTS = 4
MEMORY_MB = {"ingest": 512, "fault": 256, "merge": 2048}
DURATION = PRICES["lambda_duration"]


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
        gb_s = billed_seconds(name, f, readings) * MEMORY_MB[name] / 1024
        out[f"Lambda {name}"] = per_million * (
            f["invocations"] * PRICES["lambda_request"] + gb_s * PRICES["lambda_gb_s_arm"]
        )
    return out


def billed_seconds(name: str, f: dict, readings: int) -> float:
    """The seconds Lambda would bill for what function `name` did in a run of `readings`."""
    if f["invocations"] == 0:
        return 0.0
    if name == "merge":
        moved = f["read_units"] * 4096 + f["write_units"] * 1024
        return f["invocations"] * DURATION["merge_run_s"] + moved / DURATION["merge_bytes_per_s"]
    vcpu = min(1.0, MEMORY_MB[name] / DURATION["mb_per_vcpu"])
    return f["invocations"] * DURATION["batch_s"] + readings / DURATION["fold_readings_per_vcpu_s"] / vcpu


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


GB, TB = 2**30, 2**40
ARCHIVE_BUFFER_S = 300
NAMED_QUERIES = 4


def archive_month(intersections: int) -> dict[str, float]:
    """Dollars a 30-day month, by item, for the archive of a city of `intersections`, and the
    volumes behind them (keys starting with `_`)."""
    a = PRICES["archive"]
    m = MEASURED["archive"]["result"]
    readings = readings_per_hour(intersections) * 24 * 30
    increment = a["firehose_record_increment_bytes"]
    billed = readings * (-(-m["json_bytes_per_reading"] // increment)) * increment / GB
    json_gb = readings * m["json_bytes_per_reading"] / GB
    parquet_gb = readings * m["parquet_bytes_per_reading"] / GB
    objects = 30 * 24 * 3600 / ARCHIVE_BUFFER_S
    scanned = NAMED_QUERIES * 30 * max(parquet_gb * GB, a["athena_min_bytes_per_query"])
    return {
        "_readings": readings,
        "_parquet_gb": parquet_gb,
        "_billed_gb": billed,
        "Firehose ingestion (5 KB a record)": billed * a["firehose_ingest_gb"],
        "Firehose format conversion": billed * a["firehose_conversion_gb"],
        "Firehose dynamic partitioning": json_gb * a["firehose_partitioning_gb"] + objects / 1000 * a["firehose_partitioning_objects_1000"],
        "S3 PUTs and transitions": objects / 1000 * (a["s3_put_1000"] + a["s3_transition_standard_ia_1000"] + a["s3_transition_glacier_ir_1000"]),
        "S3 storage, a month of readings in Standard": parquet_gb * a["s3_standard_gb_month"],
        "S3 storage, a year of readings (1 month Standard, 11 Standard-IA)": parquet_gb * (a["s3_standard_gb_month"] + 11 * a["s3_standard_ia_gb_month"]),
        "Athena, the named queries once a day over 30 days": scanned / TB * a["athena_tb"],
        **outputs_month(intersections),
    }


def windows_a_day(length: str) -> float:
    """Closed windows of a length (`15m`, `1h`, `24h`) a day."""
    unit = {"m": 60, "h": 3600, "d": 86400}[length[-1]]
    return 86400 / (int(length[:-1]) * unit)


def outputs_month(intersections: int) -> dict[str, float]:
    """The merge's tables a 30-day month: a PUT per object, as many objects a window of each
    length as the measured run wrote per window it closed (one for the results' tables, fewer
    for `plan_changes` and `alarm_events`, written only when something changed), and the bytes
    measured by infra/outputs_size.py, scaled with the city but for `windows` (a row a
    window)."""
    a = PRICES["archive"]
    measured = MEASURED.get("archive_outputs")
    if not measured:
        return {}
    o = measured["result"]
    scale = intersections / o["intersections"]
    closed = {length: v["objects"] for length, v in o["tables"]["windows"].items()}
    stored = 0.0
    puts = 0.0
    for table, lengths in o["tables"].items():
        for length, v in lengths.items():
            per_month = 30 * windows_a_day(length) * v["objects"] / closed[length]
            stored += per_month * v["mean_bytes"] * (1 if table == "windows" else scale)
            puts += per_month
    return {
        "the merge's tables, PUTs (an object a table a closed window)": puts / 1000 * a["s3_put_1000"],
        "the merge's tables, a month of them in Standard": stored / GB * a["s3_standard_gb_month"],
    }


def archive_table() -> str:
    sizes = (1_000, EXTRAPOLATE_TO)
    months = [archive_month(n) for n in sizes]
    m = MEASURED["archive"]["result"]
    rows = ["| the archive, a 30-day month | " + " | ".join(f"{n:,} intersections" for n in sizes) + " |"]
    rows.append("|---" * (len(sizes) + 1) + "|")
    rows.append("| readings | " + " | ".join(f"{c['_readings'] / 1e6:,.0f} M" for c in months) + " |")
    rows.append(
        f"| on the stream ({m['json_bytes_per_reading']:.0f} B a reading), as Firehose bills it (5 KB) | "
        + " | ".join(f"{c['_readings'] * m['json_bytes_per_reading'] / GB:,.1f} GB, {c['_billed_gb']:,.0f} GB" for c in months)
        + " |"
    )
    rows.append(
        f"| in S3 as Parquet ({m['parquet_bytes_per_reading']:.2f} B a reading) | "
        + " | ".join(f"{c['_parquet_gb']:,.2f} GB ({c['_parquet_gb'] / 30:,.3f} GB a day)" for c in months)
        + " |"
    )
    for k in [k for k in months[0] if not k.startswith("_")]:
        rows.append(f"| {k} | " + " | ".join(f"${c[k]:,.2f}" for c in months) + " |")
    first = [k for k in months[0] if not k.startswith("_") and "a year of" not in k]
    rows.append("| **the first month** | " + " | ".join(f"**${sum(c[k] for k in first):,.2f}**" for c in months) + " |")
    return "\n".join(rows)


def check() -> list[str]:
    """Where the README's table is not this one, and where a recorded run that priced Lambda
    by the shared model (its functions carry `billed_seconds`) disagrees with this table: its
    seconds or its dollars per million."""
    problems = []
    readme = (HERE.parent / "README.md").read_text().splitlines()
    for ours in (table().splitlines(), archive_table().splitlines()):
        starts = [i for i, line in enumerate(readme) if line == ours[0]]
        if not starts or readme[starts[0] : starts[0] + len(ours)] != ours:
            problems.append(f"README.md's table `{ours[0][:40]}...` is not what `python3 infra/cost.py` prints; paste it in")
    for r in MEASURED["runs"] + MEASURED.get("before", []):
        m = r["result"]
        fns = m["by_function"]
        if not all("billed_seconds" in f for f in fns.values()):
            continue
        label = f"{r['commit']}, {m['intersections']} × {m['minutes']} min"
        for name, f in fns.items():
            seconds = billed_seconds(name, f, m["readings"])
            if abs(seconds - f["billed_seconds"]) > 1e-6 * max(1.0, seconds):
                problems.append(f"{label}: {name} billed {f['billed_seconds']} s, here {seconds} s")
        total = sum(costs(r).values())
        if abs(total - m["usd_per_million_readings"]) > 1e-9:
            problems.append(f"{label}: ${m['usd_per_million_readings']} per million, here ${total}")
    return problems


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--check"]:
        found = check()
        for p in found:
            print("infra/cost.py --check:", p, file=sys.stderr)
        sys.exit(1 if found else 0)
    print(f"Prices: {PRICES['date']}")
    for r in MEASURED["runs"]:
        print(f"Measured: `{r['command']}` at {r['commit']} on {r['emulator']} ({r['date']})")
    print(table())
    a = MEASURED["archive"]
    print(f"\nArchive: `{a['command']}` at {a['commit']} ({a['writer']}), readings from `{a['readings_from']}`")
    print(archive_table())
