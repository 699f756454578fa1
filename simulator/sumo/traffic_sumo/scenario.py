"""The scenarios, generated (never committed as XML) with fixed seeds by SUMO's own tools.

- ``shipped``: a 5 × 4 grid of signalised junctions (200 m × 150 m blocks, two lanes each way,
  100 m approach edges at the fringe), 90 minutes of random trips from fringe to fringe whose
  rate rises from 1,200 to a peak of 3,600 vehicles/h and falls back, in five 18-minute steps
  (``randomTrips.py --insertion-rate 1200 2400 3600 2400 1200``);
- ``grid-2770`` and ``grid-4800``: a second grid (4 × 3 junctions, 250 m × 180 m
  blocks, two lanes, random trips from the fringe), one hour at 2,770 and 4,800 vehicles/h.

Every junction's program is netgenerate's default: 90 s, two 42 s greens, 3 s yellows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from .home import sumo_binary, sumo_home

#: The seed of every generator call.
SEED = 14


@dataclass(frozen=True)
class Scenario:
    """A grid and its demand."""

    x: int
    y: int
    x_length_m: float
    y_length_m: float
    #: Vehicles per hour in equal-length steps over `duration_s`.
    rates_veh_h: tuple[float, ...]
    duration_s: int


SCENARIOS = {
    "shipped": Scenario(5, 4, 200, 150, (1200, 2400, 3600, 2400, 1200), 5400),
    "grid-2770": Scenario(4, 3, 250, 180, (2770,), 3600),
    "grid-4800": Scenario(4, 3, 250, 180, (4800,), 3600),
}


def netgenerate_argv(s: Scenario, out: str) -> list[str]:
    """The ``netgenerate`` call of a scenario's grid."""
    return [
        sumo_binary("netgenerate"), "--grid",
        "--grid.x-number", str(s.x), "--grid.y-number", str(s.y),
        "--grid.x-length", str(s.x_length_m), "--grid.y-length", str(s.y_length_m),
        "--grid.attach-length", "100", "--default.lanenumber", "2",
        "--tls.guess", "--no-turnarounds", "--seed", str(SEED), "-o", out,
    ]


def random_trips_argv(s: Scenario, net: str, trips: str, routes: str) -> list[str]:
    """The ``randomTrips.py`` call of a scenario's demand."""
    return [
        sys.executable, os.path.join(sumo_home(), "tools", "randomTrips.py"),
        "-n", net, "-o", trips, "-r", routes, "--fringe-factor", "max",
        "-b", "0", "-e", str(s.duration_s),
        "--insertion-rate", *[f"{r:g}" for r in s.rates_veh_h],
        "--seed", str(SEED), "--validate",
    ]


def generate(name: str, out_dir: str) -> list[str]:
    """Writes ``<name>.net.xml`` and ``<name>.rou.xml`` into `out_dir`; returns their paths."""
    s = SCENARIOS[name]
    os.makedirs(out_dir, exist_ok=True)
    net = os.path.join(out_dir, f"{name}.net.xml")
    trips = os.path.join(out_dir, f"{name}.trips.xml")
    routes = os.path.join(out_dir, f"{name}.rou.xml")
    quiet = {"check": True, "stdout": subprocess.DEVNULL}
    subprocess.run(netgenerate_argv(s, net), **quiet)
    subprocess.run(random_trips_argv(s, net, trips, routes), **quiet)
    return [net, routes]
