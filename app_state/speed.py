"""The Speed & memory page's measurements and the Export page's sparse checkpoint, kept per model in this session.

The measuring itself is the library's (``sparsity_viz.backend.speed_report``,
``sparsity_viz.backend.round_trip``); this module draws the progress bar and keeps the
results. Nothing here waits for the C++ kernel's first build: while it is being built
the page says so and measures when it is ready.
"""

from __future__ import annotations

import streamlit as st

import sparsity_viz.backend as backend
from sparsity_viz.backend.bench import CALIBRATION_INPUTS
from sparsity_viz.backend import kernels
from sparsity_viz.backend.live import kernel_pending
from sparsity_viz.backend.round_trip import sparse_round_trip
from sparsity_viz.backend.sparse_checkpoint import SparseSave
from sparsity_viz.backend.speed_report import SpeedReport, SpeedSettings, measure_speed, measurement_key
from sparsity_viz.session import Workbench

from .cache import SPARSE_CKPT, SPEED, session_cache
from .workbench import dataset

NATIVE_FALLBACK = "The native sparse kernel is unavailable: the pure-torch formats are measured instead."


def speed_key(wb: Workbench, settings: SpeedSettings) -> tuple:
    """The key of one measurement: the dataset it calibrates and times on, the current model's weights, its masks
    and every setting (last: ``measure`` reads it there). Without the dataset, moons' result stayed on screen as
    circles' (an audit)."""
    return (wb.dataset, *measurement_key(wb.current, wb.masks, settings))


def speed_result(key: tuple) -> SpeedReport | None:
    """The kept measurement of ``key`` in this session, if any."""
    return session_cache(SPEED).get(key)


def measure(key: tuple, wb: Workbench) -> SpeedReport:
    """Measure the current model under a progress bar; kept under ``key`` for this session."""
    bar = st.progress(0.0, text="Measuring...")
    report = measure_speed(wb.current, key[-1], progress=lambda fraction, text: bar.progress(fraction, text=text),
                           calibration=dataset(wb).x_test[:CALIBRATION_INPUTS])
    bar.empty()
    session_cache(SPEED)[key] = report
    return report


def sparse_checkpoint(wb: Workbench) -> tuple[SparseSave, bool]:
    """The current model as a sparse safetensors checkpoint and whether it loads back bit-exact (memoised)."""
    cache = session_cache(SPARSE_CKPT)
    hit = cache.get(id(wb.current))
    if hit is not None and hit[0] is wb.current:
        return hit[1], hit[2]
    trip = sparse_round_trip(wb.current, wb.masks)
    cache[id(wb.current)] = (wb.current, trip.saved, trip.ok)
    return trip.saved, trip.ok


def native_kernel_building() -> bool:
    """True while the native kernel is being built (started here if needed): measuring would wait for it."""
    return kernel_pending()


def backend_notices() -> list[tuple[str, str]]:
    """``(level, text)`` lines about this machine: CUDA paths skipped, native kernel fallback.

    Never waits for the kernel's first build: while it is being built nothing is said about it here.
    """
    out = []
    ok, why = backend.cuda_status()
    if not ok:
        out.append(("info", "The CUDA formats (cuSPARSE CSR and 2:4 semi-structured) need an NVIDIA GPU and were "
                            f"skipped on this machine. {why}"))
    if kernels.ready() and not backend.native_available():
        out.append(("warning", backend.native_notice() or NATIVE_FALLBACK))
    return out
