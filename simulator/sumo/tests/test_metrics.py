"""The benchmark's delay: time loss + depart delay over every vehicle of the run's horizon,
the ones still driving and the ones still waiting to depart at its end included."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from traffic_sumo import bridge, metrics

TRIPINFO = """<tripinfos>
  <tripinfo id="a" depart="10.00" departDelay="2.00" arrival="60.00" timeLoss="8.00"/>
  <tripinfo id="b" depart="12.00" departDelay="0.00" arrival="50.00" timeLoss="0.00"/>
  <tripinfo id="c" depart="20.00" departDelay="5.00" arrival="-1.00" timeLoss="35.00"/>
  <tripinfo id="d" depart="-1" departDelay="30.00" arrival="-1.00" timeLoss="0.00" vaporized="end"/>
</tripinfos>"""


def test_delay_is_time_loss_plus_depart_delay_over_every_vehicle(tmp_path):
    path = tmp_path / "tripinfo.xml"
    path.write_text(TRIPINFO)
    m = metrics.trip_delays(str(path))
    # delays: 10, 0, 40 (still driving), 30 (never inserted)
    assert m["vehicles"] == 4
    assert m["mean_delay_s"] == pytest.approx(20.0)
    assert m["vehicles_arrived"] == 2
    assert m["unfinished"] == 2
    assert m["undeparted"] == 1
    assert m["p95_delay_s"] == pytest.approx(metrics.percentile([0, 10, 30, 40], 95))


def test_percentile_interpolates_between_ranks():
    assert metrics.percentile([0, 10, 30, 40], 95) == pytest.approx(38.5)
    assert metrics.percentile([7], 95) == 7
    assert metrics.percentile([1, 2, 3, 4, 5], 50) == 3
    assert metrics.percentile([], 95) == 0.0


# More than the north approach can carry in two minutes: some vehicles are still on the
# network at the end and some never got in.
OVERLOAD = """<routes>
  <flow id="ns" begin="0" end="100" number="200" from="NC" to="CS"/>
  <flow id="ew" begin="0" end="100" number="20" from="EC" to="CW"/>
  <vehicle id="after" depart="300"><route edges="WC CE"/></vehicle>
</routes>"""


def test_a_run_counts_the_vehicles_still_driving_and_the_ones_never_inserted(crossing, tmp_path):
    routes = tmp_path / "overload.rou.xml"
    routes.write_text(OVERLOAD)
    work = tmp_path / "w"
    result = bridge.run(bridge.Options(net=crossing, routes=str(routes), control="fixed",
                                       duration_s=120, progress_every_s=0, workdir=str(work)))
    # every vehicle due before the end is counted (the one due after it is not demand of
    # the run), arrived or not, inserted or not
    assert result["vehicles"] == 220
    assert result["vehicles_arrived"] + result["unfinished"] == 220
    assert result["unfinished"] > result["undeparted"] > 0
    trips = ET.parse(work / "tripinfo.xml").getroot().findall("tripinfo")
    delays = [float(t.get("timeLoss")) + float(t.get("departDelay")) for t in trips]
    assert result["mean_delay_s"] == pytest.approx(sum(delays) / len(delays), abs=0.01)
    # the undeparted vehicles' depart delay runs to the end of the run
    waiting = [t for t in trips if float(t.get("depart")) < 0]
    assert waiting and all(float(t.get("departDelay")) > 0 for t in waiting)
    assert result["seed"] == 1 and result["control"] == "fixed"
    assert result["teleports"] == 0
