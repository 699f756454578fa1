"""From a SUMO network to the city contract (docs/contracts.md).

Every traffic-light system (TLS) of the network that controls at least one link becomes one
intersection:

- **id**: the TLS id, with every character outside ``A-Z a-z 0-9 - _ . :`` replaced by ``_``
  (cut to 64 characters; a clash gets ``_N`` appended), so any network maps;
- **position**: the mean of the TLS's junctions, in degrees when the network is geo-referenced
  and ``pyproj`` is installed (it is not among the bridge's packages); otherwise the network's
  metres are laid around :data:`ORIGIN` (a flat-earth offset, enough for a map of a test
  network: the system only places the intersections with it);
- **lights** (at most four): the approaches. With four incoming edges or fewer, each incoming
  edge is a light; with more, the edges are grouped by the compass quadrant they arrive from
  (north, east, south, west). Lights are numbered in compass order of their approach;
- **saturation**: lanes of the approach controlled by the TLS × :data:`SATURATION_PER_LANE_VEH_H`;
- **phases**: the program's green phases (a state with ``G`` or ``g`` and no ``y``). Each light
  belongs to the green phase that gives most of its links priority green (``G``, then ``g``;
  the first such phase on a tie); a green phase that is no light's own (a protected left-turn
  phase, say) is not a phase of the contract and keeps its duration. A phase's ``green_s`` is
  its duration, ``red_s`` the rest of the cycle minus its own clearance (the yellow and all-red
  phases that follow it).

Each intersection keeps, as extra fields the contract allows, what the bridge needs to apply
timings back: ``sumo_tls`` (the TLS id), ``sumo_program``, per light ``sumo_lanes`` and per
phase ``sumo_phase`` (its index in the program).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

#: Saturation flow of one lane, vehicles per hour of green: a 2.0 s saturation headway, the
#: figure of the Highway Capacity Manual's base rate rounded down and the default of SUMO's own
#: ``tlsCycleAdaptation.py`` (``--saturation-headway 2``).
SATURATION_PER_LANE_VEH_H = 1800.0

#: Where a network without geo-reference is placed (latitude, longitude): the sample city's.
ORIGIN = (41.85, 12.60)

#: Metres per degree of latitude (and of longitude at the equator).
METRES_PER_DEGREE = 111_320.0

#: Distance of a detector from the stop line, m (clamped to the lane).
DETECTOR_SETBACK_M = 5.0

_ID_OK = re.compile(r"[^A-Za-z0-9\-_.:]")


class MappingError(ValueError):
    """The network has nothing the contract can describe (no traffic light with a green phase)."""


@dataclass
class Light:
    """One approach group of a TLS: a light of the city contract."""

    index: int
    edges: list[str]
    lanes: list[str]
    link_indices: list[int]
    saturation_veh_h: float


@dataclass
class Phase:
    """A green phase of the program that is some light's own."""

    program_index: int
    lights: list[int]
    green_s: float
    red_s: float


@dataclass
class Junction:
    """One TLS mapped to an intersection of the city contract."""

    intersection_id: str
    tls_id: str
    program_id: str
    lat: float
    lon: float
    lights: list[Light]
    phases: list[Phase]
    #: The program's phases as ``(duration_s, state)``, in order.
    program: list[tuple[float, str]] = field(default_factory=list)

    def to_contract(self) -> dict:
        """The intersection as the city file has it (with the ``sumo_*`` extra fields)."""
        return {
            "id": self.intersection_id,
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
            "sumo_tls": self.tls_id,
            "sumo_program": self.program_id,
            "lights": [
                {
                    "light": lt.index,
                    "saturation_veh_h": lt.saturation_veh_h,
                    "sumo_lanes": lt.lanes,
                }
                for lt in self.lights
            ],
            "phases": [
                {
                    "lights": ph.lights,
                    "green_s": ph.green_s,
                    "red_s": ph.red_s,
                    "sumo_phase": ph.program_index,
                }
                for ph in self.phases
            ],
        }

    def light_of_lane(self) -> dict[str, int]:
        """Each controlled incoming lane's light."""
        return {lane: lt.index for lt in self.lights for lane in lt.lanes}


def is_green(state: str) -> bool:
    """A green phase: some link has green and none has yellow."""
    return any(c in "Gg" for c in state) and not any(c in "yY" for c in state)


def contract_id(tls_id: str, taken: set[str]) -> str:
    """The intersection id of a TLS: allowed characters only, at most 64, unique in `taken`."""
    base = _ID_OK.sub("_", tls_id)[:64] or "_"
    candidate, n = base, 1
    while candidate in taken:
        suffix = f"_{n}"
        candidate = base[: 64 - len(suffix)] + suffix
        n += 1
    return candidate


def bearing(dx: float, dy: float) -> float:
    """Compass bearing, degrees clockwise from north, of the direction (dx, dy)."""
    return math.degrees(math.atan2(dx, dy)) % 360.0


def arrival_bearing(lane) -> float:
    """Where traffic on `lane` comes from, seen from its end: the bearing from the lane's last
    shape point back to the one before it."""
    shape = lane.getShape()
    (x0, y0), (x1, y1) = shape[-2], shape[-1]
    return bearing(x0 - x1, y0 - y1)


def _position(net, junction_nodes) -> tuple[float, float]:
    xs = [n.getCoord()[0] for n in junction_nodes]
    ys = [n.getCoord()[1] for n in junction_nodes]
    x, y = sum(xs) / len(xs), sum(ys) / len(ys)
    if net.hasGeoProj():
        try:
            lon, lat = net.convertXY2LonLat(x, y)
            return lat, lon
        except (ImportError, RuntimeError):  # no pyproj in the environment: laid flat
            pass
    lat0, lon0 = ORIGIN
    lat = lat0 + y / METRES_PER_DEGREE
    lon = lon0 + x / (METRES_PER_DEGREE * math.cos(math.radians(lat0)))
    return lat, lon


def _group_lights(connections) -> list[Light]:
    """Incoming edges (with their lanes and link indices) grouped into at most four lights."""
    edges: dict[str, dict] = {}
    for in_lane, _out_lane, link in connections:
        e = in_lane.getEdge().getID()
        g = edges.setdefault(e, {"lanes": [], "links": [], "bearing": arrival_bearing(in_lane)})
        if in_lane.getID() not in g["lanes"]:
            g["lanes"].append(in_lane.getID())
        g["links"].append(link)
    if len(edges) <= 4:
        groups = [([e], g) for e, g in edges.items()]
        keyed = sorted(groups, key=lambda eg: (eg[1]["bearing"], eg[0][0]))
        merged = [(es, g["lanes"], g["links"]) for es, g in keyed]
    else:
        quadrants: dict[int, tuple[list, list, list]] = {}
        for e, g in sorted(edges.items(), key=lambda kv: (kv[1]["bearing"], kv[0])):
            q = int(((g["bearing"] + 45.0) % 360.0) // 90.0)
            es, lanes, links = quadrants.setdefault(q, ([], [], []))
            es.append(e)
            lanes.extend(g["lanes"])
            links.extend(g["links"])
        merged = [quadrants[q] for q in sorted(quadrants)]
    return [
        Light(
            index=i,
            edges=es,
            lanes=lanes,
            link_indices=sorted(set(links)),
            saturation_veh_h=len(lanes) * SATURATION_PER_LANE_VEH_H,
        )
        for i, (es, lanes, links) in enumerate(merged)
    ]


def clearance_after(program: list[tuple[float, str]], i: int) -> float:
    """Duration of the non-green phases (yellow, all-red) right after phase `i`."""
    total, n = 0.0, len(program)
    j = (i + 1) % n
    while j != i and not is_green(program[j][1]):
        total += program[j][0]
        j = (j + 1) % n
    return total


def map_tls(net, tls, taken: set[str], program_id: str | None = None) -> Junction | None:
    """Maps one TLS, or `None` when it controls nothing or its program has no green phase."""
    connections = [c for c in tls.getConnections() if c[2] >= 0]
    programs = tls.getPrograms()
    if not connections or not programs:
        return None
    pid = program_id if program_id in programs else sorted(programs)[0]
    program = [(float(p.duration), p.state) for p in programs[pid].getPhases()]
    greens = [i for i, (_, s) in enumerate(program) if is_green(s)]
    if not greens:
        return None
    lights = _group_lights(connections)
    owner: dict[int, list[int]] = {}
    for lt in lights:
        def score(i: int, lt=lt) -> tuple[int, int, int]:
            state = program[i][1]
            big = sum(1 for k in lt.link_indices if k < len(state) and state[k] == "G")
            small = sum(1 for k in lt.link_indices if k < len(state) and state[k] == "g")
            return (big, small, -i)
        best = max(greens, key=score)
        if score(best)[:2] == (0, 0):
            continue  # never green: not part of any phase (the contract allows that)
        owner.setdefault(best, []).append(lt.index)
    if not owner:
        return None
    cycle = sum(d for d, _ in program)
    phases = [
        Phase(
            program_index=i,
            lights=sorted(owner[i]),
            green_s=program[i][0],
            red_s=max(0.0, cycle - program[i][0] - clearance_after(program, i)),
        )
        for i in greens
        if i in owner
    ]
    nodes = list({c[0].getEdge().getToNode().getID(): c[0].getEdge().getToNode()
                  for c in connections}.values())
    lat, lon = _position(net, nodes)
    iid = contract_id(tls.getID(), taken)
    taken.add(iid)
    return Junction(iid, tls.getID(), pid, lat, lon, lights, phases, program)


def map_network(net) -> list[Junction]:
    """Every signalised junction of a `sumolib` network, in TLS id order."""
    taken: set[str] = set()
    out = []
    for tls in sorted(net.getTrafficLights(), key=lambda t: t.getID()):
        j = map_tls(net, tls, taken)
        if j is not None:
            out.append(j)
    if not out:
        raise MappingError("the network has no traffic light with a green phase")
    return out


def read_network(path: str) -> list[Junction]:
    """Reads a ``.net.xml`` and maps it (programs included)."""
    import sumolib

    net = sumolib.net.readNet(path, withPrograms=True)
    return map_network(net)


def city(junctions: list[Junction]) -> dict:
    """The city file of the mapped junctions."""
    return {"intersections": [j.to_contract() for j in junctions]}


def detectors_xml(junctions: list[Junction], lanes_length: dict[str, float], period_s: int,
                  output: str) -> str:
    """An additional file with one induction loop (E1) per controlled incoming lane,
    :data:`DETECTOR_SETBACK_M` before its stop line, aggregating over `period_s`."""
    lines = ['<additional>']
    for j in junctions:
        for lt in j.lights:
            for lane in lt.lanes:
                length = lanes_length[lane]
                pos = max(0.0, length - DETECTOR_SETBACK_M)
                lines.append(
                    f'    <inductionLoop id="{detector_id(lane)}" lane="{lane}" '
                    f'pos="{pos:.2f}" period="{period_s}" file="{output}"/>'
                )
    lines.append('</additional>')
    return "\n".join(lines) + "\n"


def detector_id(lane: str) -> str:
    """The id of the detector on `lane`."""
    return f"traffic_{lane}"
