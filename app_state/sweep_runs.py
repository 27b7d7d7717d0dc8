"""Where the app's sweeps run and where their finished points are kept.

A sweep runs on this machine, or on the Ray cluster named by the ``RAY_ADDRESS``
environment variable (the choice is offered only when it is set). Every finished
point is written to a results store, one CSV per run id under ``runs_dir()``,
shared by all sessions and kept across restarts: a page reload reads the points
back instead of computing them, and a stopped sweep resumes where it stopped.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from sparsity_viz.executors import ExecutorUnavailableError, RayExecutor

from . import keys
from .widgets import show_lasting

RUNS_DIR_ENV = "SPARSITY_VIZ_RUNS_DIR"  # where the app's results stores live (tests: a tmp dir)
RAY_ADDRESS_ENV = "RAY_ADDRESS"
PLACES = {"local": "this machine", "ray": "Ray cluster"}


def runs_dir() -> Path:
    """The directory of the app's results stores: ``$SPARSITY_VIZ_RUNS_DIR`` or ``~/.cache/sparsity_viz/runs``."""
    return Path(os.environ.get(RUNS_DIR_ENV) or Path.home() / ".cache" / "sparsity_viz" / "runs").expanduser()


def ray_address() -> str | None:
    """The cluster the app may send sweeps to (``$RAY_ADDRESS``), None when unset."""
    return os.environ.get(RAY_ADDRESS_ENV) or None


def sweep_place(page: str) -> str:
    """``"local"``, or ``"ray"`` when ``RAY_ADDRESS`` is set and the user picks the cluster (a radio)."""
    address = ray_address()
    if address is None:
        return "local"
    return st.radio("Run on", list(PLACES), horizontal=True, key=keys.sweep_place(page), format_func=PLACES.get,
                    help=f"Ray cluster: every point is a task on the cluster at {address} (RAY_ADDRESS); "
                         "finished points are stored either way, so a reload or a resumed run computes none twice.")


def place_executor(place: str) -> RayExecutor | None:
    """The sweep executor of ``place``: None (the sweep's own default) here, a cluster connection for ``"ray"``
    (kept open between sweeps: sessions share it)."""
    if place != "ray" or ray_address() is None:
        return None
    executor = RayExecutor(address=ray_address(), shutdown=False)
    try:
        executor.check()  # ray installed, the address answers (seconds, not Ray's minutes of retries)
    except ExecutorUnavailableError as exc:
        show_lasting("warning", f"{exc} The sweep runs on this machine instead.")  # still said after the run
        return None
    return executor
