"""The RESCO networks, read from the pinned sumo-rl wheel (a fake wheel here: the scenario
files are never part of the repository)."""

from __future__ import annotations

import zipfile

import pytest

from traffic_sumo import resco

SUMOCFG = """<configuration>
  <input>
    <net-file value="cologne8.net.xml"/>
\t<route-files value="cologne8.rou.xml"/>
  </input>
  <time>
    <begin value="25200"/>
    <end value="28800"/>
  </time>
</configuration>
"""


def fake_wheel(path) -> str:
    base = "sumo_rl/nets/RESCO/cologne8/"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(base + "cologne8.sumocfg", SUMOCFG)
        z.writestr(base + "cologne8.net.xml", "<net/>\n")
        z.writestr(base + "cologne8.rou.xml", "<routes/>\n")
        z.writestr("sumo_rl/nets/RESCO/grid4x4/grid4x4.net.xml", "<net/>\n")
    return str(path)


def test_a_network_is_its_sumocfg_files_and_times_extracted_from_the_wheel(tmp_path):
    wheel = fake_wheel(tmp_path / "sumo_rl-1.4.5-py3-none-any.whl")
    s = resco.scenario("cologne8", cache=str(tmp_path / "cache"), wheel=wheel)
    assert (s.name, s.begin_s, s.end_s) == ("cologne8", 25200, 28800)
    assert open(s.net).read() == "<net/>\n"
    assert open(s.routes[0]).read() == "<routes/>\n"
    assert s.net.startswith(str(tmp_path / "cache"))
    # a second lookup reuses the extracted files
    again = resco.scenario("cologne8", cache=str(tmp_path / "cache"), wheel=wheel)
    assert again == s


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(resco.UnknownNetwork) as e:
        resco.scenario("cologne9")
    msg = str(e.value)
    assert "cologne9" in msg
    for name in ("cologne8", "ingolstadt7", "grid4x4", "arterial4x4"):
        assert name in msg


def test_a_known_name_missing_from_the_wheel_is_an_error_naming_the_wheel(tmp_path):
    wheel = fake_wheel(tmp_path / "w.whl")
    with pytest.raises(resco.RescoError, match="grid4x4"):
        resco.scenario("grid4x4", cache=str(tmp_path / "cache"), wheel=wheel)


def test_a_wheel_with_another_digest_is_refused(tmp_path):
    wheel = fake_wheel(tmp_path / "sumo_rl-1.4.5-py3-none-any.whl")
    with pytest.raises(resco.RescoError, match="sha256"):
        resco.check_digest(wheel)
