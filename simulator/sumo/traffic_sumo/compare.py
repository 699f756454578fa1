"""The comparison of controls on one scenario, as a Markdown table.

Paired seeds (``--seeds``, ``--resco``): every control runs on the same seeds 1..N, and each
control's difference from ``actuated`` (SUMO's actuated control, the reference traffic
engineers know) is taken seed by seed; the table gives the mean of those differences and a
95 % interval from Student's t-distribution with N - 1 degrees of freedom. Pairing removes
what the seed does to every control alike (the drivers' randomness), so a few seeds separate
controls that unpaired means would not.

A single seed (the default of ``--name``):

Each control runs in a process of its own (``python -m traffic_sumo run``). The closed loop
runs three times, one setting changed at a time and the same on every scenario:

1. the system's defaults (``core/src/config.rs``: minimum cycle 30 s, lost time 4 s per phase;
   windows 15m, 1h, 24h, so a 15-minute control window; lateness 2 min; a merge every 5 min);
2. the minimum cycle of SUMO's offline Webster (``tlsCycleAdaptation.py``'s default, 20 s), so
   that the two Webster implementations are compared like for like;
3. that, and a 5-minute control window (``TRAFFIC_WINDOWS=5m,15m,1h,24h``: the assignment's
   windows are all still there; the shortest window is the control window).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

#: Seeds of a paired comparison unless ``--seeds`` says otherwise.
PAIRED_SEEDS = 5
#: Controls of a paired comparison unless ``--controls`` says otherwise (every benchmark
#: control; ``actuated`` is the reference of the differences).
PAIRED_CONTROLS = ("fixed", "actuated", "webster", "max-pressure")
#: The control every other is compared with.
REFERENCE = "actuated"

#: Student's t, two-sided 95 % (the 0.975 quantile), by degrees of freedom 1..30.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

#: (label, control, extra environment) of every row, in order.
ROWS = [
    ("fixed (the network's programs)", "fixed", {}),
    ("closed loop, system defaults", "webster", {}),
    ("closed loop, WEBSTER_MIN_CYCLE_S=20", "webster", {"WEBSTER_MIN_CYCLE_S": "20"}),
    ("closed loop, WEBSTER_MIN_CYCLE_S=20, TRAFFIC_WINDOWS=5m,15m,1h,24h", "webster",
     {"WEBSTER_MIN_CYCLE_S": "20", "TRAFFIC_WINDOWS": "5m,15m,1h,24h"}),
    ("SUMO's offline Webster (tlsCycleAdaptation.py)", "sumo-webster", {}),
    ("SUMO's actuated control", "actuated", {}),
]


def run_one(net: str, routes: str, control: str, seed: int, traffic: str,
            env: dict[str, str]) -> dict:
    """One control in a child process; its last stdout line."""
    argv = [sys.executable, "-m", "traffic_sumo", "run", "--net", net, "--routes", routes,
            "--control", control, "--seed", str(seed), "--traffic", traffic]
    return _child(argv, env)


#: The engine's variables a single-seed table's rows set themselves.
ROW_VARIABLES = ("WEBSTER_", "TRAFFIC_WINDOWS", "TRAFFIC_ALLOWED_LATENESS", "TRAFFIC_MERGE_EVERY")


def child_env(env: dict[str, str], keep_caller: bool) -> dict[str, str]:
    """The environment of a child run: the caller's, with `env` over it. The single-seed
    table's rows (``keep_caller`` false) leave out the caller's own engine variables
    (:data:`ROW_VARIABLES`), so that each row is its own setting; a paired comparison keeps
    every variable the caller set (``PLAN_*``, ``WEBSTER_*``, ``TRAFFIC_*``): the way to
    measure a setting on all its controls."""
    base = {k: v for k, v in os.environ.items()
            if keep_caller or not k.startswith(ROW_VARIABLES)}
    return {**base, **env}


def _child(argv: list[str], env: dict[str, str], keep_caller: bool = False) -> dict:
    """A ``traffic_sumo run`` in a child process (:func:`child_env`); its last stdout line."""
    out = subprocess.run(argv, env=child_env(env, keep_caller), check=True, text=True,
                         stdout=subprocess.PIPE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_all(net: str, routes: str, seed: int, traffic: str) -> list[tuple[str, dict]]:
    """Every row of :data:`ROWS`."""
    rows = []
    for label, control, env in ROWS:
        print(f"compare: {label}", file=sys.stderr, flush=True)
        rows.append((label, run_one(net, routes, control, seed, traffic, env)))
    return rows


def table(name: str, rows: list[tuple[str, dict]]) -> str:
    """The Markdown table: time loss and its change against fixed plans and SUMO's Webster."""
    by = {r["control"]: r for _, r in rows}
    fixed = by.get("fixed", {}).get("mean_time_loss_s")
    ref = by.get("sumo-webster", {}).get("mean_time_loss_s")

    def pct(x: float, base: float | None) -> str:
        if not base:
            return "–"
        v = round((x - base) / base * 100)
        return f"{v:+d} %" if v else "0 %"

    lines = [
        f"| {name} | mean time loss | vs fixed | vs SUMO's Webster | travel time | waiting "
        "| arrived / inserted | retimings |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        t = r["mean_time_loss_s"]
        lines.append(
            f"| {label} | {t:.1f} s | {pct(t, fixed)} | {pct(t, ref)} "
            f"| {r['mean_travel_time_s']:.1f} s | {r['mean_waiting_s']:.1f} s "
            f"| {r['vehicles_arrived']} / {r['vehicles_inserted']} | {r['retimings']} |"
        )
    return "\n".join(lines)


def t_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """The mean of `values` and its 95 % interval (Student's t); no interval from one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = T_975[n - 2] if n - 1 <= len(T_975) else 1.96
    half = t * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def run_paired(target: list[str], controls: list[str], seeds: list[int], traffic: str
               ) -> dict[str, list[dict]]:
    """Every control on every seed (`target`: ``--resco NAME`` or ``--net N --routes R``),
    one run at a time; each control's results in seed order."""
    out: dict[str, list[dict]] = {c: [] for c in controls}
    for seed in seeds:
        for c in controls:
            print(f"compare: {c}, seed {seed}", file=sys.stderr, flush=True)
            argv = [sys.executable, "-m", "traffic_sumo", "run", *target, "--control", c,
                    "--seed", str(seed), "--traffic", traffic]
            out[c].append(_child(argv, {}, keep_caller=True))
    return out


def summarise(name: str, controls: list[str], runs: dict[str, list[dict]],
              reference: str = REFERENCE) -> dict:
    """The paired comparison: per control the means over the seeds, and the mean and 95 %
    interval of its seed-by-seed difference in mean delay from `reference`
    (:data:`REFERENCE` unless given); the runs' faults (:mod:`traffic_sumo.faults`)."""
    ref = runs.get(reference)
    first = runs[controls[0]]
    out: dict = {"network": name, "seeds": [r["seed"] for r in first],
                 "reference": reference if ref else None,
                 "faults": first[0].get("faults") if first else None, "controls": {}}
    for c in controls:
        rs = runs[c]
        row = {k: round(sum(r[k] for r in rs) / len(rs), 2)
               for k in ("mean_delay_s", "p95_delay_s", "vehicles_arrived", "unfinished")}
        row["mean_delay_by_seed_s"] = [r["mean_delay_s"] for r in rs]
        row["wall_s"] = round(sum(r.get("wall_s", 0.0) for r in rs) / len(rs), 1)
        if ref and c != reference:
            diffs = [r["mean_delay_s"] - q["mean_delay_s"] for r, q in zip(rs, ref)]
            mean, lo, hi = t_interval(diffs)
            row["vs_reference_s"] = {"mean": round(mean, 2),
                                     "low": None if lo is None else round(lo, 2),
                                     "high": None if hi is None else round(hi, 2)}
        out["controls"][c] = row
    return out


def _faults_text(summary: dict) -> str:
    """The faults of a comparison's runs, for its table (empty when none)."""
    f = summary.get("faults") or {}
    parts = []
    if f.get("silent_detectors"):
        parts.append(f"{f['silent_detectors'] * 100:g} % silent detectors")
    if f.get("outage_s"):
        start, length = f["outage_s"]
        parts.append(f"system unreachable {start / 60:g}-{(start + length) / 60:g} min")
    return "".join(f", {p}" for p in parts)


def paired_table(summary: dict) -> str:
    """The Markdown table of :func:`summarise`."""
    ref = summary["reference"]
    seeds = summary["seeds"]
    lines = [
        f"| {summary['network']}, seeds {seeds[0]}-{seeds[-1]}{_faults_text(summary)} "
        f"| mean delay | p95 delay "
        f"| arrived | unfinished | vs {ref or 'actuated (not run)'}: mean [95 % interval] "
        "| wall time per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, r in summary["controls"].items():
        d = r.get("vs_reference_s")
        if d is None:
            diff = "–"
        elif d["low"] is None:
            diff = f"{d['mean']:+.1f} s"
        else:
            diff = f"{d['mean']:+.1f} s [{d['low']:+.1f}, {d['high']:+.1f}]"
        lines.append(f"| {c} | {r['mean_delay_s']:.1f} s | {r['p95_delay_s']:.1f} s "
                     f"| {r['vehicles_arrived']:g} | {r['unfinished']:g} | {diff} "
                     f"| {r['wall_s']:.0f} s |")
    return "\n".join(lines)
