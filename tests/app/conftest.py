"""AppTest fixtures: caches cleared before and after each test (they persist across AppTests in one process)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import streamlit as st

ROOT = Path(__file__).resolve().parents[2]
for p in (str(ROOT), str(Path(__file__).parent)):
    if p not in sys.path:
        sys.path.insert(0, p)


@pytest.fixture(autouse=True)
def _own_runs_dir(tmp_path, monkeypatch):
    """Each test's sweeps are stored in its own directory (never read back from another test or ~/.cache)."""
    monkeypatch.setenv("SPARSITY_VIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()



