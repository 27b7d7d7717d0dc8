"""The live path: accuracy after pruning and the curves run through the compiled sparse model when its plan
says that is faster, and give exactly the dense model's predictions."""

from __future__ import annotations

import pytest
import torch

import app_state
from apptools import check, open_app
from sparsity_viz.backend.live import fast_plan
from sparsity_viz.backend.ranked import AnchoredMLP
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.experiments import sweep
from sparsity_viz.models import get_spec
from sparsity_viz.pruning import prune
from sparsity_viz.training import evaluate


@pytest.fixture(autouse=True, scope="module")
def _native_kernel_built():
    """The app never waits for the first C++ build (it evaluates densely meanwhile); these tests do."""
    from sparsity_viz.backend import kernels

    if not kernels.available():
        pytest.skip("the native kernel cannot be built here: " + (kernels.notice() or "no reason given"))


@pytest.mark.parametrize("model_name", ["lenet300", "digits_mlp", "moons_mlp", "spiral_mlp"])
def test_compiled_predictions_equal_dense(model_name):
    dense, _ = load_sample(model_name)
    ds = load_dataset(get_spec(model_name).dataset)
    used = 0
    for level in (0.5, 0.8, 0.9, 0.97):
        for strategy in ("magnitude", "global_magnitude", "random"):
            pruned = prune(dense, strategy, level, seed=1).model.eval()
            compiled = fast_plan(pruned)
            if compiled is None:
                continue
            used += 1
            with torch.no_grad():
                want = pruned(ds.x_test).argmax(1)
            got = compiled(ds.x_test).argmax(1)
            assert torch.equal(got, want), f"{model_name} {strategy} {level}: {(got != want).sum()} predictions differ"
    # sparse enough -> compiled (70 % and up); the toys' tiny layers stay dense under the heuristic
    assert used >= {"lenet300": 9, "digits_mlp": 1}.get(model_name, 0)


def test_low_sparsity_and_conv_models_stay_dense():
    lenet300, _ = load_sample("lenet300")
    assert fast_plan(lenet300) is None  # dense: not even compiled
    assert fast_plan(prune(lenet300, "magnitude", 0.3).model) is None
    lenet5, _ = load_sample("lenet5")
    assert fast_plan(prune(lenet5, "magnitude", 0.95).model) is None  # heuristic not calibrated on convs


def test_curves_through_compiled_model_match_dense():
    dense, _ = load_sample("lenet300")
    ds = load_dataset("mnist5k")
    kw = dict(strategies=["magnitude"], levels=[0.0, 0.9, 0.97], device="cpu")
    plain = sweep(dense, ds, **kw)
    fast = sweep(dense, ds, **kw, evaluator=app_state.curves_evaluator())
    assert fast["accuracy"].tolist() == plain["accuracy"].tolist()
    assert fast["loss"].tolist() == pytest.approx(plain["loss"].tolist(), rel=1e-5)


def test_prune_page_accuracy_runs_compiled_and_matches_dense():
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    check(at)
    wb = at.session_state[app_state.KEY_BENCH]
    model, compiled = at.session_state[app_state.KEY_FAST][id(wb.current)]
    assert model is wb.current and compiled is not None
    assert isinstance(compiled, AnchoredMLP)  # read off the slider's sorted layers (backend.ranked), not recompiled
    assert compiled.formats() == ["anchored", "csr-native", "dense"]  # first layer from anchors, CSR; 10 rows: dense
    dense_acc = evaluate(wb.current, *_test_split(), device="cpu").accuracy
    assert at.metric[0].value == f"{100 * dense_acc:.1f} %"
    at.slider(key="prune_sparsity").set_value(20).run()  # dense layers after the first: still incremental
    check(at)
    wb = at.session_state[app_state.KEY_BENCH]
    compiled = at.session_state[app_state.KEY_FAST][id(wb.current)][1]
    assert compiled.formats() == ["anchored", "dense", "dense"]
    assert at.metric[0].value == f"{100 * evaluate(wb.current, *_test_split(), device='cpu').accuracy:.1f} %"


def _test_split():
    ds = load_dataset("mnist5k")
    return ds.x_test, ds.y_test


def test_prune_slider_sorts_once_and_cuts_every_level(monkeypatch):
    from sparsity_viz.backend import live

    built = []

    class Counting(live.LivePruner):
        def __init__(self, *args, **kwargs):
            built.append(args[1].name)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(live, "LivePruner", Counting)
    monkeypatch.setattr(live, "_PRUNERS", type(live._PRUNERS)())  # empty: this test's sorts only
    at = open_app("lenet300", "2_prune")
    for level in (50, 85, 97, 12):
        at.slider(key="prune_sparsity").set_value(level).run()
        check(at)
        wb = at.session_state[app_state.KEY_BENCH]
        ref = prune(wb.dense, "magnitude", level / 100)
        assert all(torch.equal(wb.masks[n], m) for n, m in ref.masks.items()), level
        assert all(torch.equal(a, b) for a, b in zip(wb.current.state_dict().values(), ref.model.state_dict().values()))
    assert built == ["magnitude"]  # one sort for four slider positions
