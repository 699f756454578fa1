"""The ``eclipse-sumo`` package's SUMO: its home and its binaries."""

from __future__ import annotations

import os


def sumo_home() -> str:
    """The ``eclipse-sumo`` package's SUMO_HOME."""
    import sumo

    return sumo.SUMO_HOME


def sumo_binary(name: str) -> str:
    """A SUMO binary of the ``eclipse-sumo`` package (``sumo``, ``netgenerate``, ...)."""
    return os.path.join(sumo_home(), "bin", name)
