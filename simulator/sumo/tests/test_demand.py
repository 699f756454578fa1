"""The demand estimates against the arrivals: counting each vehicle once on its approach, the
minutes a control window holds, and the error's arithmetic."""

from __future__ import annotations

import pytest

from traffic_sumo import bridge, demand


class _Light:
    def __init__(self, index, lanes):
        self.index, self.lanes = index, lanes


class _Junction:
    intersection_id, tls_id = "A0", "tlsA"
    lights = [_Light(0, ["n_0"]), _Light(1, ["e_0", "e_1"])]


#: tlsA's controlled links: link 0 from n_0, links 1 and 2 from e_0 and e_1.
LINKS = {"tlsA": [[("n_0", "s_0", ":A_0")], [("e_0", "w_0", ":A_1")], [("e_1", "w_1", ":A_2")]]}


class _Traci:
    class vehicle:  # noqa: N801 (libsumo's name)
        next_tls: dict[str, list] = {}

        @classmethod
        def getIDList(cls):
            return list(cls.next_tls)

        @classmethod
        def getNextTLS(cls, v):
            return cls.next_tls[v]


def _reading(light, vehicles):
    return {"intersection_id": "A0", "light": light, "vehicles": vehicles}


def test_arrivals_are_what_was_served_plus_the_growth_of_what_heads_for_the_light():
    arrivals = demand.Arrivals([_Junction()], LINKS)
    assert arrivals.light_of == {("tlsA", 0): ("A0", 0), ("tlsA", 1): ("A0", 1),
                                 ("tlsA", 2): ("A0", 1)}
    traci = _Traci()
    # minute 60: one vehicle queued for light 1 (far back), one past its last signal
    traci.vehicle.next_tls = {"a": [("tlsA", 2, 400.0, "r")], "b": []}
    arrivals.close_minute(traci, 60, [_reading(0, 4), _reading(1, 0)])
    # minutes 120 and 180: light 1 serves 3 and 2, and three then five vehicles head for it
    traci.vehicle.next_tls = {v: [("tlsA", 1, 10.0, "G")] for v in "cde"}
    arrivals.close_minute(traci, 120, [_reading(0, 1), _reading(1, 3)])
    traci.vehicle.next_tls = {v: [("tlsA", 1, 10.0, "G")] for v in "cdefg"}
    arrivals.close_minute(traci, 180, [_reading(0, 0), _reading(1, 2)])
    # the window of the minutes stamped 120 and 180: served 5, heading 5 after, 1 before
    assert arrivals.arrived(("A0", 1), 120, 240) == 5 + 5 - 1
    # the first minute: nothing before it
    assert arrivals.arrived(("A0", 0), 60, 120) == 4
    assert arrivals.arrived(("A0", 0), 300, 360) == 0


def test_a_window_key_is_its_seconds_from_the_start():
    assert bridge.window_seconds("15m@2026-01-05T06:15:00Z") == (900.0, 1800.0)
    assert bridge.window_seconds("1h@2026-01-05T07:00:00Z") == (3600.0, 7200.0)
    assert bridge.sumo_time(bridge.iso(4321)) == 4321


def test_the_error_weighs_every_light_window_by_what_arrived():
    class _Arrived:
        def arrived(self, key, start, end):
            return {("A0", 0): 30, ("A0", 1): 10}[key]

    err = demand.DemandError()
    err.add(_Arrived(), [{"intersection_id": "A0", "window": "15m@x", "lights": [
        {"light": 0, "served_veh_h": 80.0, "demand_veh_h": 100.0, "saturation_x": 0.95},
        {"light": 1, "served_veh_h": 40.0, "demand_veh_h": 40.0, "saturation_x": 0.2},
    ]}], lambda _w: (0.0, 900.0))
    s = err.summary()
    # arrived: 120 and 40 veh/h
    assert s["arrived_veh_h"] == 160.0
    assert s["served_wape"] == pytest.approx((40 + 0) / 160)
    assert s["served_bias"] == pytest.approx(-40 / 160)
    assert s["estimate_wape"] == pytest.approx((20 + 0) / 160)
    assert s["estimate_bias"] == pytest.approx(-20 / 160)
    assert s["at_capacity"]["lights"] == 1
    assert s["at_capacity"]["estimate_wape"] == pytest.approx(20 / 120, abs=1e-4)
    assert demand.DemandError().summary() == {"lights": 0, "arrived_veh_h": 0,
                                              "at_capacity": {"lights": 0, "arrived_veh_h": 0}}
