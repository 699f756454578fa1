"""A closed-loop run of a few simulated minutes through ``traffic sumo``: readings arrive, a
control window closes, the merge's timings reach SUMO's program, broken lamps raise alarms."""

from __future__ import annotations

import os
import shutil

import pytest

from traffic_sumo import bridge

TRAFFIC = os.environ.get("TRAFFIC_BIN") or shutil.which("traffic")

# Heavier north-south than east-west, so Webster gives north-south the longer green.
ROUTES = """<routes>
  <flow id="ns" begin="0" end="600" vehsPerHour="900" from="NC" to="CS"/>
  <flow id="sn" begin="0" end="600" vehsPerHour="900" from="SC" to="CN"/>
  <flow id="ew" begin="0" end="600" vehsPerHour="200" from="EC" to="CW"/>
  <flow id="we" begin="0" end="600" vehsPerHour="200" from="WC" to="CE"/>
</routes>"""


@pytest.fixture
def loop_env(monkeypatch):
    """One-minute control windows, no lateness, a merge every simulated minute, and shards
    that received nothing idle after a minute: the one crossing fills one of `traffic sumo`'s
    four shards, and the three others would hold every window for the default five minutes
    of a run this short (docs/state.md, "Time")."""
    if not TRAFFIC:
        pytest.fail("set TRAFFIC_BIN to the traffic binary (scripts/test.d/sumo.sh does)")
    monkeypatch.setenv("TRAFFIC_WINDOWS", "1m,5m")
    monkeypatch.setenv("TRAFFIC_ALLOWED_LATENESS", "0s")
    monkeypatch.setenv("TRAFFIC_MERGE_EVERY", "1m")
    monkeypatch.setenv("TRAFFIC_IDLE_TIMEOUT", "1m")


def run(crossing, tmp_path, control="webster", **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    routes = tmp_path / "r.rou.xml"
    routes.write_text(ROUTES)
    seen: list[tuple[str, dict]] = []
    opts = bridge.Options(net=crossing, routes=str(routes), control=control, duration_s=300,
                          traffic=TRAFFIC, progress_every_s=0, workdir=str(tmp_path / "w"),
                          observer=lambda kind, what: seen.append((kind, what)), **kw)
    return bridge.run(opts), seen


def test_readings_reach_the_system_a_window_closes_and_its_timings_reach_the_program(
        crossing, tmp_path, loop_env):
    result, seen = run(crossing, tmp_path)
    answers = [a for k, a in seen if k == "answer"]
    # one tick per simulated minute, four readings (lights) each, none rejected
    assert len(answers) == 4
    assert answers[-1]["readings"] == 16 and answers[-1]["rejected"] == 0
    retimed = [t for a in answers for t in a["timings"]]
    assert retimed and retimed[0]["intersection_id"] == "C"
    assert retimed[0]["retimed_from"].startswith("1m@2026-01-05T06:0")
    applied = [a for k, a in seen if k == "applied"]
    assert applied and applied[0]["tls"] == "C"
    # the program SUMO runs after the first retiming is the latest timing answered before it:
    # the system's greens (whole seconds), the yellows unchanged
    first = next(i for i, (k, _) in enumerate(seen) if k == "applied")
    latest = [t for k, a in seen[:first] if k == "answer" for t in a["timings"]][-1]
    greens = {p["lights"][0]: p["green_s"] for p in latest["phases"]}
    durations = [d for d, _ in applied[0]["phases"]]
    assert durations[0] == max(1.0, round(greens[0]))
    assert durations[2] == max(1.0, round(greens[1]))
    assert durations[1] == durations[3] == 3.0
    assert durations[0] > durations[2], "north-south carries more traffic"
    assert result["retimings"] == len(applied)
    assert result["vehicles_inserted"] > 0


def test_broken_lamps_raise_alarms_through_the_fault_function(crossing, tmp_path, loop_env):
    result, seen = run(crossing, tmp_path, lamp_failure_probability=1.0)
    alarms = [al for k, a in seen if k == "answer" for al in a["alarms"]]
    assert alarms and {al["intersection_id"] for al in alarms} == {"C"}
    # every light broke a lamp in the first minute: one alarm each, stamped 06:01
    first = {al["light"] for al in alarms if al["ts"].startswith("2026-01-05T06:01:00")}
    assert first == {0, 1, 2, 3}


def test_a_run_is_the_same_for_the_same_seed(crossing, tmp_path, loop_env):
    a, _ = run(crossing, tmp_path / "a")
    b, _ = run(crossing, tmp_path / "b")
    # everything but the wall time
    assert a.pop("wall_s") >= 0 and b.pop("wall_s") >= 0
    assert a == b
