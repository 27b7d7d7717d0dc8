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
    assert any(f"Cannot reach a Ray cluster at {closed}" in w.value and "The sweep runs on this machine instead" in w.value
               for w in at.warning)
    assert _traces(at), "computed here instead"


def test_curves_stop_shows_the_finished_points_and_compute_the_rest_finishes(monkeypatch, tmp_path):
    """The Curves page had no Stop button: its sweep ran without a stop flag, so a long one (fine-tuned points,
    LeNet-5) could only be left by changing a widget, and a stopped run showed nothing of what it had finished."""
    import app_state.runs as runs

    at = open_app("moons_mlp", "7_curves")
    _curves(at)
    updates = []  # progress-bar updates: one per finished point; Stop after the third
    ui = runs.Interruptions.ui
    monkeypatch.setattr(runs.Interruptions, "ui", lambda self, fn: updates.append(1) or ui(self, fn))
    monkeypatch.setattr(runs.Interruptions, "stop", lambda self: len(updates) >= 3)
    at.button(key="curves_compute").click().run()  # stops after a few of the 3 x 3 x 3 points
    check(at)
    at.run()  # (a real Stop click reruns the page by itself)
    assert at.button(key="curves_compute").label == "Compute the rest"
    shown = next(w.value for w in at.warning if "finished so far" in w.value)
    n = int(shown.split("Showing the ")[1].split(" points")[0])
    assert 0 < n < 27 and len(at.dataframe[0].value) == n and _traces(at)  # the finished points, drawn
    monkeypatch.undo()
    at.button(key="curves_compute").click().run()
    check(at)
    assert not [b for b in at.button if b.key == "curves_compute"]
    assert not [w for w in at.warning if "finished so far" in w.value]
    assert len(at.dataframe[0].value) == 3 * 3 * 3  # strategies (magnitude, global, random) x levels x seeds


@pytest.mark.parametrize("failure", ["diverged", "worker lost"])
def test_curves_that_fail_say_why_and_keep_the_page(monkeypatch, failure):
    import app_state.lab as lab
    from sparsity_viz.divergence import TrainingDiverged
    from sparsity_viz.executors import PointFailedError

    def fail(*args, **kwargs):
        if failure == "diverged":
            raise TrainingDiverged("diverged", None, epoch=1, reason="the loss became NaN")
        raise PointFailedError("magnitude at 50 %", ConnectionError("node gone"), lost=True)

    at = open_app("moons_mlp", "7_curves")
    _curves(at)
    monkeypatch.setattr(lab, "sweep", fail)
    at.button(key="curves_compute").click().run()
    check(at)  # a message, not a traceback
    expected = "Training diverged in epoch 1" if failure == "diverged" else "the Ray worker or node running it died"
    assert any(expected in e.value for e in at.error)
    assert at.button(key="curves_compute").label == "Compute curves"


def test_compare_says_it_fell_back_after_its_run_reran_the_page(monkeypatch):
    """Compare's sweep reruns the page when it ends, which wiped the fallback warning drawn during the run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("RAY_ADDRESS", closed)
    at = open_app("moons_mlp", "9_compare")
    at.radio(key="compare_run_on").set_value("ray").run()
    at.multiselect(key="compare_levels").set_value([0, 60]).run()  # a quick new sweep: runs at once, on "ray"
    check(at)
    pytest.importorskip("ray", reason="the fallback message names Ray only where it is installed")
    assert any(f"Cannot reach a Ray cluster at {closed}" in w.value and "The sweep runs on this machine instead" in w.value
               for w in at.warning)
    assert _traces(at)
