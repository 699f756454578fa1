"""Tiny SUMO networks built by ``netconvert`` from a few lines of XML, for the tests."""

from __future__ import annotations

import subprocess

import pytest

from traffic_sumo.bridge import sumo_binary

NODES = """<nodes>
  <node id="C" x="0" y="0" type="traffic_light"/>
  <node id="N" x="0" y="150"/> <node id="E" x="150" y="0"/>
  <node id="S" x="0" y="-150"/> <node id="W" x="-150" y="0"/>
</nodes>"""

# Two lanes north-south, one lane east-west.
EDGES = """<edges>
  <edge id="NC" from="N" to="C" numLanes="2" speed="13.89"/>
  <edge id="CN" from="C" to="N" numLanes="2" speed="13.89"/>
  <edge id="EC" from="E" to="C" numLanes="1" speed="13.89"/>
  <edge id="CE" from="C" to="E" numLanes="1" speed="13.89"/>
  <edge id="SC" from="S" to="C" numLanes="2" speed="13.89"/>
  <edge id="CS" from="C" to="S" numLanes="2" speed="13.89"/>
  <edge id="WC" from="W" to="C" numLanes="1" speed="13.89"/>
  <edge id="CW" from="C" to="W" numLanes="1" speed="13.89"/>
</edges>"""

# A program with an all-red phase and a protected left-turn phase for north-south (links 3
# and 10 are the north and south approaches' left turns).
LEFT_TURN_PROGRAM = """<tlLogics>
  <tlLogic id="C" type="static" programID="0" offset="0">
    <phase duration="30" state="GGGgrrrGGGgrrr"/>
    <phase duration="3"  state="yyyyrrryyyyrrr"/>
    <phase duration="2"  state="rrrrrrrrrrrrrr"/>
    <phase duration="8"  state="rrrGrrrrrrGrrr"/>
    <phase duration="3"  state="rrryrrrrrryrrr"/>
    <phase duration="30" state="rrrrGGgrrrrGGg"/>
    <phase duration="3"  state="rrrryyyrrrryyy"/>
  </tlLogic>
</tlLogics>"""


def build(tmp_path, program: str | None = None) -> str:
    """The crossing as a ``.net.xml`` (with `program` instead of netconvert's own)."""
    (tmp_path / "n.nod.xml").write_text(NODES)
    (tmp_path / "n.edg.xml").write_text(EDGES)
    argv = [sumo_binary("netconvert"), "-n", str(tmp_path / "n.nod.xml"),
            "-e", str(tmp_path / "n.edg.xml"), "--no-turnarounds",
            "-o", str(tmp_path / "tiny.net.xml")]
    if program:
        (tmp_path / "tls.xml").write_text(program)
        argv += ["--tllogic-files", str(tmp_path / "tls.xml")]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(tmp_path / "tiny.net.xml")


@pytest.fixture
def crossing(tmp_path) -> str:
    """A four-arm crossing under netconvert's default program (42 s greens, 3 s yellows)."""
    return build(tmp_path)


@pytest.fixture
def left_turn_crossing(tmp_path) -> str:
    """The crossing under :data:`LEFT_TURN_PROGRAM`."""
    return build(tmp_path, LEFT_TURN_PROGRAM)
