"""The comparison of every control on one scenario, as a Markdown table.

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
import os
import subprocess
import sys

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
    # The rows' settings only: the caller's own engine variables are left out.
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("WEBSTER_", "TRAFFIC_WINDOWS", "TRAFFIC_ALLOWED_LATENESS",
                                 "TRAFFIC_MERGE_EVERY"))}
    out = subprocess.run(argv, env={**base, **env}, check=True, text=True,
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
