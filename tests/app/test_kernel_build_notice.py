"""While the native kernel is being built, no page waits for it: dense evaluation and a visible notice."""

from __future__ import annotations

import pytest

import app_state
from apptools import check, open_app
from sparsity_viz.backend import kernels, live
from sparsity_viz.data import load_dataset
from sparsity_viz.training import evaluate


@pytest.fixture
def building(monkeypatch):
    """The kernel is not built and its background build never finishes; loading it would block the page."""
    started = []

    def blocked(*args, **kwargs):
        raise AssertionError("a page waited for the C++ build")

    monkeypatch.setattr(kernels, "ready", lambda: False)
    monkeypatch.setattr(kernels, "build_in_background", lambda: started.append(True))
    monkeypatch.setattr(kernels, "load", blocked)
    monkeypatch.setattr(live, "_requested", False)
    return started


def _notices(at) -> list[str]:
    return [i.value for i in at.info if "being built in the background" in i.value]


def test_prune_evaluates_densely_and_says_the_kernel_is_building(building):
    at = open_app("lenet300", "2_prune")
    assert not _notices(at)  # a dense model needs no kernel: nothing is built, nothing said
    at.slider(key="prune_sparsity").set_value(90).run()
    check(at)
    assert building, "the background build was started"
    assert _notices(at) and "dense model" in _notices(at)[0]
    wb = at.session_state[app_state.KEY_BENCH]
    assert id(wb.current) not in at.session_state[app_state.KEY_FAST]  # a dense answer while building is not kept
    ds = load_dataset("mnist5k")
    assert at.metric[0].value == f"{100 * evaluate(wb.current, ds.x_test, ds.y_test, device='cpu').accuracy:.1f} %"


def test_speed_page_waits_for_the_build_without_blocking(building):
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    at.switch_page("views/12_speed.py").run()
    check(at)
    assert any("**Measure** is ready as soon as it is" in i.value for i in at.info)
    assert at.button(key="speed_measure").disabled
