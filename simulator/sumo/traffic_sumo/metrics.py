"""The benchmark's measure of a run, from SUMO's trip information.

A vehicle's delay is its ``timeLoss`` (the time it lost against driving its route at its own
desired speed) plus its ``departDelay`` (the time it waited to be inserted). The run's figures
take every vehicle due to depart before its end:

- the ones that arrived (their whole trip);
- the ones still driving at the end (``--tripinfo-output.write-unfinished``: the time lost and
  the depart delay so far);
- the ones still waiting to be inserted at the end (``--tripinfo-output.write-undeparted``: a
  depart delay from their due time to the end, no time loss).

So a control cannot look better by holding traffic out of the network or by leaving it stuck
there when the run ends.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

#: SUMO options that make the trip information cover every vehicle (see the module's text).
TRIPINFO_OPTIONS = ["--tripinfo-output.write-unfinished", "true",
                    "--tripinfo-output.write-undeparted", "true"]


def percentile(values: list[float], q: float) -> float:
    """The `q`-th percentile, linear between the closest ranks (NumPy's default); 0 when
    there are no values."""
    if not values:
        return 0.0
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def trip_delays(path: str) -> dict:
    """The delay figures of a ``--tripinfo-output`` file written with :data:`TRIPINFO_OPTIONS`."""
    delays, arrived, unfinished, undeparted = [], 0, 0, 0
    for _, el in ET.iterparse(path):
        if el.tag != "tripinfo":
            continue
        delays.append(float(el.get("timeLoss", "0")) + float(el.get("departDelay", "0")))
        if float(el.get("arrival", "-1")) >= 0:
            arrived += 1
        else:
            unfinished += 1
            if float(el.get("depart", "-1")) < 0:
                undeparted += 1
        el.clear()
    return {
        "vehicles": len(delays),
        "mean_delay_s": round(sum(delays) / len(delays), 2) if delays else 0.0,
        "p95_delay_s": round(percentile(delays, 95), 2),
        "vehicles_arrived": arrived,
        "unfinished": unfinished,
        "undeparted": undeparted,
    }
