"""The native build never hangs on a stale lock and never blocks the live path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sparsity_viz.backend import kernels

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(kernels.native_disabled(), reason="native kernels disabled by SPARSITY_VIZ_NATIVE=0")


def test_a_stale_torch_lock_left_by_a_killed_build_does_not_hang_the_next_load():
    if not kernels.available():
        pytest.skip("no compiler here: " + (kernels.notice() or ""))
    build = kernels.cache_dir()
    (build / "lock").write_text("")  # what a build killed half-way leaves behind
    code = "from sparsity_viz.backend import kernels; print(kernels.load() is not None)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "True", proc.stderr[-2000:]
    assert not (build / "lock").exists()


def test_ready_is_instant_once_built_and_background_build_is_idempotent():
    if not kernels.available():
        pytest.skip("no compiler here: " + (kernels.notice() or ""))
    assert kernels.ready()
    kernels.build_in_background()  # already loaded: nothing to start
    assert kernels._background is None or not kernels._background.is_alive()


def test_ready_is_false_for_an_empty_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(kernels.ENV_CACHE, str(tmp_path))
    monkeypatch.setattr(kernels, "_tried", False)
    assert not kernels.ready()
