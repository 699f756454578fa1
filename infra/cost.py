#!/usr/bin/env python3
"""What a million readings cost on the deployed template: the arithmetic behind the README's
table ("Deploying to AWS", "What it costs"). Prints that table.

    python3 infra/cost.py

Inputs, each from a measurement or the code (change them here, not in the README):

- a reading per light per minute, four lights per intersection (simulator/src/lib.rs,
  simulator/src/generate.rs);
- the state of a full 15-minute pane: 711 bytes per intersection (`cargo bench --bench
  engine` prints "a full 15-minute pane of 10000 intersections on 4 shards is 64 items,
  7112100 bytes"); the ingest state of a pane grows linearly with its readings;
- how ingest writes (adapters/aws/src/state.rs): every batch of a shard is one
  TransactWriteItems putting the shard's meta and every pane item it touched, whole (2 write
  units per KB, transactional), after a strongly consistent BatchGetItem of the same items;
- how merge reads (functions/merge/src/lib.rs): with TRAFFIC_PROVISIONAL=all every run reads
  every pane of every open window (a pane stays in the open day-aligned 24 h window for 12 h on
  average), with `shortest` about six times in its life; strongly consistent queries, 1 read
  unit per 4 KB; a closed 15-minute window retimes every intersection (an UpdateItem and a
  history item, about 1 write unit each);
- the network state (adapters/aws/src/results.rs): one item of about 20 bytes per intersection
  (postcard: id, optional speed, vehicles, readings), put once per merge run that builds a
  window of the shortest length (every run unless TRAFFIC_PROVISIONAL=none), 1 write unit per KB;
- Lambda durations: estimates from the benchmarks (docs/state.md: ingest folds 1.0 to 1.6 M
  readings/s on one core, merge takes 0.22 s per hour of a 10,000-intersection window) plus
  DynamoDB round trips.

Prices: AWS us-east-1 on-demand list prices as of 2025, after DynamoDB's November 2024
on-demand reduction (write units $0.625, read units $0.125 per million; before it, $1.25 and
$0.25, the figures docs/state.md uses). Not re-checked from this machine (no network); other
regions cost up to ~30 % more. Check the pricing pages before quoting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRICES = {
    "kinesis_shard_hour": 0.015,  # provisioned shard-hour
    "kinesis_put_unit": 0.014 / 1e6,  # per 25 KB PUT payload unit (one per reading)
    "lambda_gb_s_arm": 0.0000133334,  # arm64, per GB-second
    "lambda_request": 0.20 / 1e6,
    "ddb_wru": 0.625 / 1e6,  # on-demand write request unit
    "ddb_rru": 0.125 / 1e6,  # on-demand read request unit
    "sns_publish": 0.50 / 1e6,
    "sns_email": 2.00 / 1e5,
    "sns_sms_us": 0.00581,  # per SMS to a US number; other countries differ widely
}
PRICES_DATE = "us-east-1 list prices as of 2025 (after the November 2024 DynamoDB on-demand reduction)"

LIGHTS = 4
READINGS_PER_LIGHT_PER_MIN = 1
PANE_S = 900
PANE_BYTES_PER_INTERSECTION = 711
BUCKETS = 16
NETWORK_BYTES_PER_INTERSECTION = 20
# A lamp fails with probability 2e-4 per reading (`traffic local`'s default) and is repaired
# once: two lamp-state changes per failure.
LAMP_CHANGES_PER_READING = 2 * 0.0002
LOAD_VCPU_PER_MB = 1 / 1769  # Lambda: one vCPU at 1,769 MB


@dataclass
class City:
    intersections: int
    shards: int
    batch_window_s: int = 60
    batch_size: int = 10_000
    fault_window_s: int = 10
    fault_batch_size: int = 1_000
    merge_every_s: int = 300
    provisional: str = "all"
    ingest_mb: int = 512
    fault_mb: int = 256
    merge_mb: int = 2048

    @property
    def readings_per_s(self) -> float:
        return self.intersections * LIGHTS * READINGS_PER_LIGHT_PER_MIN / 60

    @property
    def seconds_per_million(self) -> float:
        return 1e6 / self.readings_per_s

    @property
    def pane_bytes(self) -> float:
        return PANE_BYTES_PER_INTERSECTION * self.intersections

    @property
    def readings_per_pane(self) -> float:
        return self.readings_per_s * PANE_S


def costs(c: City) -> dict[str, float]:
    """Dollars per million readings, by item."""
    per_million = 1e6 / c.readings_per_pane  # panes' worth of readings in a million
    # --- ingest: commits per pane and shard, each rewriting the shard's items of the pane.
    per_shard_rate = c.readings_per_s / c.shards
    interval = min(c.batch_window_s, c.batch_size / per_shard_rate)
    commits = max(1, math.ceil(PANE_S / interval))
    item_full_kb = c.pane_bytes / c.shards / BUCKETS / 1024
    # k-th commit writes every item at k/commits of its final size; units round up per item.
    wru_pane = sum(
        c.shards * BUCKETS * 2 * math.ceil(item_full_kb * k / commits) + c.shards * 2  # + meta
        for k in range(1, commits + 1)
    )
    rru_pane = sum(c.shards * BUCKETS * math.ceil(item_full_kb * (k - 1) / commits / 4) for k in range(1, commits + 1))
    ingest_invocations = per_million * commits * c.shards
    # --- merge: pane reads and retiming writes.
    runs_per_pane = (12 * 3600 / c.merge_every_s) if c.provisional == "all" else 6
    merge_rru_pane = runs_per_pane * c.shards * BUCKETS * math.ceil(item_full_kb / 4)
    merge_wru_pane = 2 * c.intersections
    merge_runs = c.seconds_per_million / c.merge_every_s
    network_wru = (merge_runs if c.provisional != "none" else per_million) * math.ceil(
        NETWORK_BYTES_PER_INTERSECTION * c.intersections / 1024
    )
    panes_per_run = runs_per_pane * c.merge_every_s / PANE_S  # 48 with `all` at 5 min
    merge_cpu_s = panes_per_run * 0.224 / 4 * c.intersections / 10_000 / min(1.0, c.merge_mb * LOAD_VCPU_PER_MB)
    merge_io_s = panes_per_run * c.pane_bytes / 50e6  # ~50 MB/s of strongly consistent queries
    # --- fault: per batch and shard it writes the lamp item (about 300 bytes: 1 write unit)
    # of the intersections whose lamps changed, a failure or a repair
    # (functions/fault/src/lib.rs); 25 items per BatchWriteItem. Changes are rare: at
    # LAMP_CHANGES_PER_READING most batches write nothing.
    fault_interval = min(c.fault_window_s, c.fault_batch_size / per_shard_rate)
    fault_batches = c.seconds_per_million / fault_interval * c.shards
    changes = per_shard_rate * fault_interval * LAMP_CHANGES_PER_READING
    fault_wru = fault_batches * changes
    fault_write_requests = fault_batches * max(changes / 25, min(1.0, changes))
    fault_invocations = fault_batches
    # --- stats: an UpdateItem per ingest and fault invocation (sometimes two).
    stats_wru = 1.2 * (ingest_invocations + fault_invocations)
    # ingest: ~0.15 s of DynamoDB round trips plus the fold (0.99 M readings/s on a whole vCPU
    # into a pane already holding 14 minutes, the slower case; 512 MB is 0.29 vCPU).
    batch_readings = per_shard_rate * interval
    ingest_s = 0.15 + batch_readings / 0.99e6 / min(1.0, c.ingest_mb * LOAD_VCPU_PER_MB)
    out = {
        "Kinesis (shards)": c.shards * PRICES["kinesis_shard_hour"] * c.seconds_per_million / 3600,
        "Kinesis (PUT units)": 1e6 * PRICES["kinesis_put_unit"],
        "DynamoDB ingest writes": per_million * wru_pane * PRICES["ddb_wru"],
        "DynamoDB ingest reads": per_million * rru_pane * PRICES["ddb_rru"],
        "DynamoDB merge reads": per_million * merge_rru_pane * PRICES["ddb_rru"],
        "DynamoDB merge writes (retiming)": per_million * merge_wru_pane * PRICES["ddb_wru"],
        "DynamoDB merge writes (network state)": network_wru * PRICES["ddb_wru"],
        "DynamoDB fault lamp states": fault_wru * PRICES["ddb_wru"],
        "DynamoDB stats": stats_wru * PRICES["ddb_wru"],
        "Lambda ingest": ingest_invocations * (PRICES["lambda_request"] + ingest_s * c.ingest_mb / 1024 * PRICES["lambda_gb_s_arm"]),
        "Lambda fault": fault_invocations * (PRICES["lambda_request"] + 0.05 * c.fault_mb / 1024 * PRICES["lambda_gb_s_arm"]),
        "Lambda merge": merge_runs * (PRICES["lambda_request"] + (merge_cpu_s + merge_io_s + 0.2) * c.merge_mb / 1024 * PRICES["lambda_gb_s_arm"]),
    }
    out["_commits_per_pane"] = commits
    out["_write_requests_per_1000"] = (
        ingest_invocations + fault_write_requests + stats_wru + per_million * merge_wru_pane / 25 + merge_runs
    ) / 1000
    out["_fault_interval"] = fault_interval
    out["_wru_per_1000"] = 1000 * (wru_pane + merge_wru_pane) / c.readings_per_pane + (fault_wru + stats_wru + network_wru) / 1000
    out["_rru_per_1000"] = 1000 * (rru_pane + merge_rru_pane) / c.readings_per_pane
    out["_hours_per_million"] = c.seconds_per_million / 3600
    return out


SCENARIOS = [
    ("1,000 intersections, 1 shard, template defaults", City(1_000, 1)),
    ("1,000, 1 shard, economy", City(1_000, 1, batch_window_s=300, provisional="shortest", fault_window_s=120, fault_batch_size=10_000)),
    ("10,000 intersections, 4 shards, template defaults", City(10_000, 4)),
    ("10,000, 4 shards, economy", City(10_000, 4, batch_window_s=300, provisional="shortest", fault_window_s=120, fault_batch_size=10_000)),
]


def table() -> str:
    results = [(name, costs(city)) for name, city in SCENARIOS]
    keys = [k for k in results[0][1] if not k.startswith("_")]
    rows = ["| per million readings | " + " | ".join(n for n, _ in results) + " |"]
    rows.append("|---" * (len(results) + 1) + "|")
    rows.append("| a million readings arrive in | " + " | ".join(f"{r['_hours_per_million']:.2f} h" for _, r in results) + " |")
    rows.append("| ingest commits per pane and shard | " + " | ".join(str(r["_commits_per_pane"]) for _, r in results) + " |")
    rows.append("| DynamoDB write requests per 1,000 readings | " + " | ".join(f"{r['_write_requests_per_1000']:.1f}" for _, r in results) + " |")
    rows.append("| DynamoDB write / read units per 1,000 readings | " + " | ".join(f"{r['_wru_per_1000']:.0f} / {r['_rru_per_1000']:.0f}" for _, r in results) + " |")
    for k in keys:
        rows.append(f"| {k} | " + " | ".join(f"${r[k]:.4f}" for _, r in results) + " |")
    rows.append("| **total** | " + " | ".join(f"**${sum(r[k] for k in keys):.3f}**" for _, r in results) + " |")
    per_month = []
    for (_, city), (_, r) in zip(SCENARIOS, results):
        millions = city.readings_per_s * 30 * 86400 / 1e6
        per_month.append(f"${sum(r[k] for k in keys) * millions:,.0f} ({millions:,.0f} M readings)")
    rows.append("| a 30-day month | " + " | ".join(per_month) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(f"Prices: {PRICES_DATE}")
    print(table())
