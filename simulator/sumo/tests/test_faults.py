"""Faults of the closed loop's inputs (``traffic_sumo.faults``): silent detectors and an
outage of the system, on the crossing and on the shipped scenario, where the loop under
either fault must do no worse than fixed plans."""

from __future__ import annotations

import os

import pytest

from test_closed_loop import TRAFFIC, loop_env, run  # noqa: F401 (a fixture)
from traffic_sumo import __main__ as cli
from traffic_sumo import bridge, faults, scenario


def test_an_outage_reads_as_start_plus_duration_and_nonsense_is_refused():
    assert faults.parse_outage("20m+1h") == (1200, 3600)
    assert faults.parse_outage("90+30s") == (90, 30)
    for bad in ("20m", "1h+0m", "-1m+1h", "20m+1d", ""):
        with pytest.raises(ValueError):
            faults.parse_outage(bad)


def test_the_silent_lights_are_the_share_asked_drawn_by_the_seed():
    lights = [(f"I{i}", k) for i in range(20) for k in range(4)]
    one = faults.silent_lights(lights, 0.2, 1)
    assert len(one) == 16 and one <= set(lights)
    assert faults.silent_lights(list(reversed(lights)), 0.2, 1) == one
    assert faults.silent_lights(lights, 0.2, 2) != one
    assert faults.silent_lights(lights, 0.0, 1) == set()
    with pytest.raises(ValueError):
        faults.silent_lights(lights, 1.5, 1)


def test_the_command_line_takes_the_faults_and_refuses_bad_ones(capsys):
    for argv in (["--silent-detectors", "2"], ["--silent-detectors", "x"],
                 ["--outage", "1h"]):
        with pytest.raises(SystemExit):
            cli.main(["run", "--net", "n", "--routes", "r", "--control", "adaptive", *argv])
        assert argv[0] in capsys.readouterr().err
    # The single-seed table of a scenario runs no faults: refused rather than dropped.
    with pytest.raises(SystemExit):
        cli.main(["compare", "--name", "shipped", "--outage", "25m+1h"])
    assert "paired comparison" in capsys.readouterr().err


def test_a_silent_detectors_readings_never_reach_the_system(crossing, tmp_path, loop_env):
    result, seen = run(crossing, tmp_path, silent_detectors=0.25)
    answers = [a for k, a in seen if k == "answer"]
    # one light of four silent: three readings a minute
    assert [a["readings"] for a in answers] == [3, 6, 9, 12]
    assert result["faults"] == {"silent_detectors": 0.25, "outage_s": None}


def test_during_an_outage_the_system_gets_no_tick(crossing, tmp_path, loop_env):
    # Unreachable from 06:02 for two minutes: the ticks of 06:02 and 06:03 are not sent, and
    # the readings of their minutes are lost.
    result, seen = run(crossing, tmp_path, outage=(120, 120))
    answers = [a for k, a in seen if k == "answer"]
    assert [a["now"][11:16] for a in answers] == ["06:01", "06:04"]
    assert [a["readings"] for a in answers] == [4, 8]
    assert result["faults"] == {"silent_detectors": 0.0, "outage_s": [120, 120]}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped scenario, and the mean delay of fixed plans on it (seed 1)."""
    net, routes = scenario.generate("shipped", str(tmp_path_factory.mktemp("shipped")))
    fixed = delay((net, routes), tmp_path_factory.mktemp("fixed"), "fixed")
    return net, routes, fixed


def delay(shipped, tmp_path, control, **faults_given) -> float:
    """The mean delay of one run of the shipped scenario's 90 minutes of demand, seed 1, at
    the system's defaults."""
    if not TRAFFIC:
        pytest.fail("set TRAFFIC_BIN to the traffic binary (scripts/test.d/sumo.sh does)")
    opts = bridge.Options(net=shipped[0], routes=shipped[1], control=control, duration_s=5400,
                          seed=1, traffic=TRAFFIC, progress_every_s=0,
                          workdir=str(tmp_path / control), **faults_given)
    return bridge.run(opts)["mean_delay_s"]


@pytest.mark.parametrize("fault", [{"silent_detectors": 0.2}, {"outage": (1500, 3600)}],
                         ids=["20 % silent detectors", "an hour's outage"])
@pytest.mark.parametrize("control", ["webster", "adaptive"])
def test_on_the_shipped_scenario_the_loop_under_a_fault_does_no_worse_than_fixed_plans(
        shipped, tmp_path, control, fault, monkeypatch):
    # The system's defaults: none of the engine's variables from the caller's environment.
    for k in [k for k in os.environ if k.startswith(("TRAFFIC_", "WEBSTER_", "PLAN_"))]:
        if k != "TRAFFIC_BIN":
            monkeypatch.delenv(k)
    # The outage: from 25 min, after the first plans (20 min), through the peak, to 85 min.
    assert delay(shipped, tmp_path, control, **fault) <= shipped[2]
