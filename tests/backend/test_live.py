"""The live path's policy (``backend.live``): compiled only where faster, never waiting for the first build."""

from __future__ import annotations

import pytest
import torch

from sparsity_viz.backend import kernels, live
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.pruning import prune


@pytest.fixture(scope="module")
def lenet300_sample():
    return load_sample("lenet300")[0]


def test_dense_low_sparsity_and_conv_models_are_evaluated_as_they_are(lenet300_sample):
    assert live.fast_plan(lenet300_sample) is None
    assert live.fast_plan(prune(lenet300_sample, "magnitude", 0.3).model) is None
    lenet5, _ = load_sample("lenet5")
    assert live.fast_plan(prune(lenet5, "magnitude", 0.95).model) is None
    assert live.evaluation_model(lenet300_sample) is lenet300_sample


def test_while_the_kernel_builds_the_answer_is_dense_at_once(monkeypatch, lenet300_sample):
    started = []
    monkeypatch.setattr(kernels, "ready", lambda: False)
    monkeypatch.setattr(kernels, "build_in_background", lambda: started.append(True))
    monkeypatch.setattr(live, "_requested", False)
    assert not live.kernel_building()
    pruned = prune(lenet300_sample, "magnitude", 0.9).model
    assert live.fast_plan(pruned) is None
    assert started and live.kernel_building()
    assert live.evaluation_model(pruned) is pruned


def test_a_backend_failure_falls_back_to_the_model(monkeypatch, lenet300_sample):
    monkeypatch.setattr(live, "kernel_pending", lambda: False)

    def broken(*args, **kwargs):
        raise RuntimeError("compile failed")

    monkeypatch.setattr(live, "compile_model", broken)
    pruned = prune(lenet300_sample, "magnitude", 0.9).model
    with pytest.raises(RuntimeError):
        live.fast_plan(pruned)
    assert live.evaluation_model(pruned) is pruned


def test_sparse_mlp_is_compiled_with_the_same_predictions(lenet300_sample):
    if not kernels.available():
        pytest.skip("the native kernel cannot be built here: " + (kernels.notice() or "no reason given"))
    pruned = prune(lenet300_sample, "magnitude", 0.9).model.eval()
    compiled = live.fast_plan(pruned)
    assert compiled is not None and not live.kernel_building()
    x = torch.randn(64, 784, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(compiled(x).argmax(1), pruned(x).argmax(1))


@pytest.mark.parametrize("level", [0.5, 0.8, 0.95])
def test_with_the_native_kernels_disabled_a_slider_step_evaluates_densely(monkeypatch, lenet300_sample, level):
    """SPARSITY_VIZ_NATIVE=0 (or a failed build): kernel_pending() is False, and the step's anchored model was
    handed out, to raise in its forward (the Prune slider at 50 % and above crashed; an audit)."""
    from sparsity_viz.data import load_dataset
    from sparsity_viz.training import evaluate_dataset

    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    step = live.live_step(lenet300_sample, "global_magnitude", level)
    assert step is not None
    assert live.evaluation_model(step.model) is step.model
    data = load_dataset("mnist5k")
    expected = evaluate_dataset(prune(lenet300_sample, "global_magnitude", level).model, data)
    assert evaluate_dataset(live.evaluation_model(step.model), data).accuracy == expected.accuracy
