"""The system's demand estimates against the vehicles that truly arrived.

The system sees only what crossed each stop line (served vehicles) and estimates each light's
demand from it (``traffic_core::demand``; the ``demand`` member of ``traffic sumo``'s answers,
per intersection, light and control window). Here SUMO says what truly arrived at each light
over the same minutes (stamped as the readings are, at the minute's end, so that a control
window holds the same minutes on both sides): the vehicles the light served, plus the growth
of the vehicles heading for it (SUMO's ``getNextTLS``: every vehicle whose next signal is this
light's link, however far back it queues). A queue growing on
the approach is demand the count did not see; one shrinking is demand of earlier minutes.

:class:`DemandError` sums, over every (intersection, light, window) the system estimated:
``Σ |estimate − arrived| / Σ arrived`` (the weighted absolute percentage error) for the served
flow and for the estimate, their bias ``Σ (x − arrived) / Σ arrived``, and the same over the
lights the system judged at capacity (its degree of saturation at or above ``saturated_x``).
A vehicle not yet inserted (waiting at its source because the first lane is full) has
arrived nowhere: the truth under-counts where queues reach back to a source.
"""

from __future__ import annotations

SATURATED_X = 0.9
"""The system's default ``DEMAND_SATURATED_X``: the lights reported apart."""


class Arrivals:
    """What truly arrived at each light: the vehicles it served in a minute plus the change in
    the vehicles heading for it (a queue growing on the approach is demand that was not
    served)."""

    def __init__(self, junctions, links: dict[str, list]):
        """`links`: each TLS's controlled links (``getControlledLinks``), whose incoming lane
        says which light a vehicle's next link belongs to."""
        self.light_of: dict[tuple[str, int], tuple[str, int]] = {}
        for j in junctions:
            lane_light = {lane: lt.index for lt in j.lights for lane in lt.lanes}
            for k, group in enumerate(links.get(j.tls_id, [])):
                for link in group:
                    if link and link[0] in lane_light:
                        self.light_of[(j.tls_id, k)] = (j.intersection_id, lane_light[link[0]])
        # (intersection, light) -> {minute stamp: served}, {minute stamp: heading for it}
        self.served: dict[tuple[str, int], dict[int, int]] = {}
        self.heading: dict[tuple[str, int], dict[int, int]] = {}

    def close_minute(self, traci, now_s: float, readings: list[dict]) -> None:
        """At the end of the minute stamped `now_s`: what its `readings` served, and the
        vehicles then heading for each light."""
        stamp = int(now_s)
        for r in readings:
            key = (r["intersection_id"], r["light"])
            self.served.setdefault(key, {})[stamp] = r["vehicles"]
        counts: dict[tuple[str, int], int] = {}
        for v in traci.vehicle.getIDList():
            upcoming = traci.vehicle.getNextTLS(v)
            if not upcoming:
                continue
            tls, index, _distance, _state = upcoming[0]
            key = self.light_of.get((tls, index))
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
        for key in self.light_of.values():
            self.heading.setdefault(key, {})[stamp] = counts.get(key, 0)

    def arrived(self, key: tuple[str, int], start_s: float, end_s: float) -> int:
        """Vehicles arrived in the minutes stamped in ``[start_s, end_s)``: served in them,
        plus those heading for the light after the last of them, less those before the first."""
        stamps = sorted(t for t in self.served.get(key, {}) if start_s <= t < end_s)
        if not stamps:
            return 0
        heading = self.heading.get(key, {})
        served = sum(self.served[key][t] for t in stamps)
        return served + heading.get(stamps[-1], 0) - heading.get(stamps[0] - 60, 0)


def window_bounds(window: str, epoch_s: float, parse_iso) -> tuple[float, float]:
    """A window key (``15m@2026-01-05T06:00:00Z``) as simulated seconds ``[start, end)``."""
    length, start = window.split("@", 1)
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[length[-1]]
    start_s = parse_iso(start) - epoch_s
    return start_s, start_s + int(length[:-1]) * unit


class DemandError:
    """The estimates of a run against the arrivals."""

    def __init__(self):
        self.rows: list[tuple[float, float, float, float]] = []  # served, estimate, truth, x

    def add(self, arrivals: Arrivals, answer_demand: list[dict], bounds) -> None:
        """Compares one answer's ``demand`` member; `bounds` maps a window key to seconds."""
        for d in answer_demand:
            start, end = bounds(d["window"])
            hours = (end - start) / 3600.0
            for lt in d["lights"]:
                truth = arrivals.arrived((d["intersection_id"], lt["light"]), start, end) / hours
                self.rows.append((lt["served_veh_h"], lt["demand_veh_h"], truth,
                                  lt["saturation_x"]))

    @staticmethod
    def _summary(rows) -> dict:
        truth = sum(r[2] for r in rows)
        out: dict = {"lights": len(rows), "arrived_veh_h": round(truth, 1)}
        if truth <= 0:
            return out
        for name, k in (("served", 0), ("estimate", 1)):
            out[f"{name}_wape"] = round(sum(abs(r[k] - r[2]) for r in rows) / truth, 4)
            out[f"{name}_bias"] = round(sum(r[k] - r[2] for r in rows) / truth, 4)
        return out

    def summary(self) -> dict:
        """All light-windows, and those the system judged at capacity."""
        saturated = [r for r in self.rows if r[3] >= SATURATED_X]
        return {**self._summary(self.rows), "at_capacity": self._summary(saturated)}
