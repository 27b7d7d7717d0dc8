"""quantize_model: a quantized copy (input untouched), exact per-layer zero counts, composes with pruning."""

from __future__ import annotations

import pytest
import torch

from sparsity_viz.masks import masks_from_zeros
from sparsity_viz.models import prunable_parameters
from sparsity_viz.pruning import prune
from sparsity_viz.quantization import QUANTIZERS, QuantizedModel, get_quantizer, quantize_model
from sparsity_viz.quantization.model import REPORT_COLUMNS

METHODS = [("uniform_symmetric", 4), ("uniform_affine", 3), ("kmeans", 3), ("ternary", 2)]


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(("method", "bits"), METHODS)
def test_input_untouched_and_copy_holds_dequantized_weights(tiny_mlp, method, bits):
    before = _state(tiny_mlp)
    qm = quantize_model(tiny_mlp, method, bits)
    _assert_same_state(before, _state(tiny_mlp))
    assert isinstance(qm, QuantizedModel) and qm.model is not tiny_mlp
    weights = prunable_parameters(qm.model)
    assert list(qm.tensors) == list(weights) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    for name, param in weights.items():
        assert torch.equal(param.detach(), qm.tensors[name].dequantize())
        # the same quantizer on the same weight gives the same tensor
        alone = get_quantizer(method, bits).quantize(prunable_parameters(tiny_mlp)[name])
        assert torch.equal(alone.codes, qm.tensors[name].codes)
    # biases are not quantized
    for (k, v), (k2, v2) in zip(tiny_mlp.named_parameters(), qm.model.named_parameters()):
        if k.endswith("bias"):
            assert torch.equal(v, v2)
    out = qm.model(torch.randn(4, 5))
    assert out.shape == (4, 3) and bool(torch.isfinite(out).all())


def test_report_counts_are_exact(tiny_conv):
    qm = quantize_model(tiny_conv, "uniform_symmetric", 3, per_channel=True)
    report = qm.report()
    assert list(report.columns) == REPORT_COLUMNS
    assert list(report["layer"]) == [n.removesuffix(".weight") for n in prunable_parameters(tiny_conv)] + ["total"]
    originals = prunable_parameters(tiny_conv)
    for (name, qt), (_, row) in zip(qm.tensors.items(), report.iloc[:-1].iterrows()):
        w = originals[name].detach()
        deq = qt.dequantize()
        assert row["weights"] == w.numel()
        assert row["zeros_before"] == int((w == 0).sum()) == 0
        assert row["zeros_after"] == int((deq == 0).sum()) == qt.zeros()
        assert row["zeros_created"] == int(((deq == 0) & (w != 0)).sum())
        assert row["levels"] == int(torch.unique(deq).numel())
        assert row["bits"] == 3
        # 3-bit symmetric: q in [-3, 3], so at most 7 distinct values per channel
        per_row = [torch.unique(r).numel() for r in deq.reshape(deq.shape[0], -1)]
        assert max(per_row) <= 7
    total = report.iloc[-1]
    for col in ("weights", "zeros_before", "zeros_after", "zeros_created"):
        assert total[col] == report[col].iloc[:-1].sum()
    assert total["zeros_created"] > 0
    all_deq = torch.cat([qt.dequantize().reshape(-1) for qt in qm.tensors.values()])
    assert total["levels"] == int(torch.unique(all_deq).numel())


def test_zeros_created_by_hand():
    lin = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.75, 0.1, 0.0, -0.2], [0.05, -1.0, 0.9, 0.0]]))
    model = torch.nn.Sequential(lin)
    # 4-bit symmetric, scale 0.25: 0.1 -> 0, -0.2 -> -0.25, 0.05 -> 0, 0.9 -> 1.0; two zeros before;
    # distinct values after: {1.75, 0, -0.25, -1, 1}
    report = quantize_model(model, "uniform_symmetric", 4).report()
    assert report.iloc[0][["weights", "zeros_before", "zeros_after", "zeros_created", "levels"]].tolist() == [
        8, 2, 4, 2, 5,
    ]


@pytest.mark.parametrize(("method", "bits"), METHODS)
def test_composes_with_pruning(lenet300, method, bits):
    pruned = prune(lenet300, "magnitude", 0.9)
    before = _state(pruned.model)
    qm = quantize_model(pruned.model, method, bits)
    _assert_same_state(before, _state(pruned.model))
    report = qm.report().set_index("layer")
    for name, mask in pruned.masks.items():
        deq = prunable_parameters(qm.model)[name].detach()
        assert bool((deq[~mask] == 0).all()), "a pruned weight came back"
        layer = name.removesuffix(".weight")
        assert report.loc[layer, "zeros_before"] == int((~mask).sum())
        assert report.loc[layer, "zeros_after"] == int((deq == 0).sum())
        assert report.loc[layer, "zeros_created"] == int(((deq == 0) & mask).sum())
    assert report.loc["total", "zeros_before"] == sum(int((~m).sum()) for m in pruned.masks.values())


def test_explicit_masks_win_over_the_weights(tiny_mlp):
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(p.shape, generator=g) > 0.5 for n, p in prunable_parameters(tiny_mlp).items()}
    qm = quantize_model(tiny_mlp, "uniform_affine", 4, per_channel=True, masks=masks)
    report = qm.report()
    for (name, mask), zeros_before in zip(masks.items(), report["zeros_before"]):
        assert bool((prunable_parameters(qm.model)[name][~mask] == 0).all())
        assert zeros_before == int((~mask).sum())
    assert all(report["zeros_created"] >= 0)


def test_default_masks_are_the_zeros(tiny_mlp):
    pruned = prune(tiny_mlp, "random", 0.5, seed=3)
    a = quantize_model(pruned.model, "kmeans", 2)
    b = quantize_model(pruned.model, "kmeans", 2, masks=masks_from_zeros(pruned.model))
    for name in a.tensors:
        assert torch.equal(a.tensors[name].codes, b.tensors[name].codes)
        assert torch.equal(a.tensors[name].levels, b.tensors[name].levels)
    assert a.report().equals(b.report())
    assert a.method == "kmeans" and a.bits == 2


def test_params_reach_the_quantizer(tiny_mlp):
    low = quantize_model(tiny_mlp, "ternary", 2, delta=0.05).report()
    high = quantize_model(tiny_mlp, "ternary", 2, delta=0.5).report()
    assert high.iloc[-1]["zeros_created"] > low.iloc[-1]["zeros_created"]


def test_bad_input(tiny_mlp):
    with pytest.raises(ValueError, match="Unknown quantization method"):
        quantize_model(tiny_mlp, "nope", 4)
    with pytest.raises(ValueError, match="bits"):
        quantize_model(tiny_mlp, "uniform_affine", 0)
    with pytest.raises(ValueError, match="bits"):
        quantize_model(tiny_mlp, "uniform_affine", 33)
    bad = {n: torch.ones(2, 2, dtype=torch.bool) for n in prunable_parameters(tiny_mlp)}
    with pytest.raises(ValueError, match="shape"):
        quantize_model(tiny_mlp, "uniform_affine", 4, masks=bad)
    with torch.no_grad():
        prunable_parameters(tiny_mlp)["fc2.weight"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="Layer fc2.weight: .*NaN"):
        quantize_model(tiny_mlp, "kmeans", 4)


def test_every_registered_method_runs_on_a_conv_model(tiny_conv):
    for name, cls in QUANTIZERS.items():
        qm = quantize_model(tiny_conv, name, cls.min_bits)
        assert qm.model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
        assert qm.report().iloc[-1]["bits"] == cls.min_bits
