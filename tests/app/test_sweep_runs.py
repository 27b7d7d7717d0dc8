"""Curves and Compare keep their sweeps in the results store: a new session (after a restart) gets the figure
back without computing a point; "Run on" appears only when RAY_ADDRESS is set."""

from __future__ import annotations

import socket

import pytest
import streamlit as st
from apptools import charts, check, open_app

import sparsity_viz.experiments as experiments


def _traces(at) -> list[tuple]:
    return [(t.get("name"), tuple(t.get("x") or ()), tuple(t.get("y") or ())) for fig in charts(at) for t in fig["data"]]


def _no_computing(monkeypatch) -> None:
    """From here on, computing any sweep point fails the test; and the in-memory caches are gone (a restart)."""
    st.cache_data.clear()
    st.cache_resource.clear()

    def refuse(*args, **kwargs):
        raise AssertionError("a point was computed again")

    monkeypatch.setattr(experiments, "run_point", refuse)


def _curves(at) -> None:
    at.multiselect(key="curves_levels").set_value([0, 50, 90]).run()
    check(at)


def test_curves_come_back_from_the_store_in_a_new_session(monkeypatch, tmp_path):
    at = open_app("moons_mlp", "7_curves")
    _curves(at)
    at.button(key="curves_compute").click().run()
    check(at)
    first = _traces(at)
    assert first and len(list((tmp_path / "runs").glob("*.csv"))) == 1, "one results store for the run"
    _no_computing(monkeypatch)
    again = open_app("moons_mlp", "7_curves")
    _curves(again)
    assert _traces(again) == first
    assert not [b for b in again.button if b.key == "curves_compute"], "read back, nothing to compute"


def test_compare_comes_back_from_the_store_in_a_new_session(monkeypatch, tmp_path):
    at = open_app("moons_mlp", "9_compare")  # the quick default runs at once
    first = _traces(at)
    assert first and list((tmp_path / "runs").glob("*.csv"))
    _no_computing(monkeypatch)
    again = open_app("moons_mlp", "9_compare")
    assert _traces(again) == first
    assert not [w for w in again.warning if "Stopped" in w.value]


def test_run_on_appears_with_ray_address_and_an_unreachable_cluster_falls_back(monkeypatch):
    at = open_app("moons_mlp", "7_curves")
    assert not [r for r in at.radio if r.key == "curves_run_on"], "no cluster: no choice"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("RAY_ADDRESS", closed)
    at = open_app("moons_mlp", "7_curves")
    radio = at.radio(key="curves_run_on")
    assert radio.options == ["this machine", "Ray cluster"] and radio.value == "local"
    _curves(at)
    radio.set_value("ray").run()
    at.button(key="curves_compute").click().run()
    check(at)
    pytest.importorskip("ray", reason="the fallback message names Ray only where it is installed")
    assert any(f"Cannot reach a Ray cluster at {closed}" in w.value and "this machine instead" in w.value
               for w in at.warning)
    assert _traces(at), "computed here instead"
