"""Masks: validation, counting, application, and the round trip with ``torch.nn.utils.prune``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.utils import prune as torch_prune

from sparsity_viz import apply_masks, from_torch_prune, full_masks, masked_copy, prune, sparsity, to_torch_prune
from sparsity_viz.masks import (
    count_total,
    count_zeros,
    density,
    intersect,
    layer_sparsity,
    masks_from_zeros,
    validate_masks,
)
from sparsity_viz.models import prunable_layers, prunable_parameters


def _random_masks(model, p_keep=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(w.shape, generator=g) < p_keep for n, w in prunable_parameters(model).items()}


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same_state(a, b):
    # key order may differ: torch's ``prune.remove`` re-registers the weight after the bias
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- construction and counting -----------------------------------------------------------


def test_full_masks_cover_prunable_weights(tiny_mlp):
    masks = full_masks(tiny_mlp)
    assert list(masks) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert all(m.dtype == torch.bool and bool(m.all()) for m in masks.values())
    assert sparsity(masks) == 0.0 and density(masks) == 1.0
    with_bias = full_masks(tiny_mlp, include_bias=True)
    assert "fc1.bias" in with_bias and with_bias["fc1.bias"].shape == (7,)


def test_counts_on_hand_built_masks():
    masks = {
        "a.weight": torch.tensor([[True, False, False], [True, True, False]]),  # 3 of 6 pruned
        "b.weight": torch.tensor([False, True, True, True]),  # 1 of 4 pruned
    }
    assert count_zeros(masks) == 4
    assert count_total(masks) == 10
    assert sparsity(masks) == pytest.approx(0.4)
    assert density(masks) == pytest.approx(0.6)
    assert layer_sparsity(masks) == {"a.weight": 0.5, "b.weight": 0.25}
    assert sparsity({}) == 0.0


def test_intersect_is_elementwise_and():
    a = {"w": torch.tensor([True, True, False, False])}
    b = {"w": torch.tensor([True, False, True, False]), "v": torch.tensor([False, True])}
    out = intersect(a, b)
    assert out["w"].tolist() == [True, False, False, False]
    assert out["v"].tolist() == [False, True]
    assert a["w"].tolist() == [True, True, False, False]  # inputs untouched


def test_masks_from_zeros_reads_the_weights(tiny_mlp):
    masks = _random_masks(tiny_mlp)
    pruned = masked_copy(tiny_mlp, masks)
    read = masks_from_zeros(pruned)
    for n in masks:
        assert torch.equal(read[n], masks[n]), n


# --- validation ---------------------------------------------------------------------------


def test_validate_accepts_good_masks(tiny_mlp):
    validate_masks(tiny_mlp, full_masks(tiny_mlp, include_bias=True))


def test_validate_rejects_unknown_name(tiny_mlp):
    with pytest.raises(ValueError, match=r"fc9\.weight"):
        validate_masks(tiny_mlp, {"fc9.weight": torch.ones(7, 5, dtype=torch.bool)})


def test_validate_rejects_wrong_shape(tiny_mlp):
    with pytest.raises(ValueError, match=r"fc1\.weight.*\(5, 7\).*\(7, 5\)"):
        validate_masks(tiny_mlp, {"fc1.weight": torch.ones(5, 7, dtype=torch.bool)})


def test_validate_rejects_non_bool(tiny_mlp):
    with pytest.raises(ValueError, match=r"fc1\.weight.*bool"):
        validate_masks(tiny_mlp, {"fc1.weight": torch.ones(7, 5)})


def test_masked_copy_validates(tiny_mlp):
    with pytest.raises(ValueError):
        masked_copy(tiny_mlp, {"fc1.weight": torch.ones(3, dtype=torch.bool)})


# --- application --------------------------------------------------------------------------


def test_masked_copy_zeros_exactly_the_masked_entries_and_leaves_input(small_model):
    before = _state(small_model)
    masks = _random_masks(small_model, seed=1)
    out = masked_copy(small_model, masks)
    _assert_same_state(before, _state(small_model))
    params = dict(out.named_parameters())
    for n, m in masks.items():
        assert torch.equal(params[n][~m], torch.zeros(int((~m).sum())))
        assert torch.equal(params[n][m], before[n][m])
    # parameters without a mask (biases) are unchanged
    for n, p in params.items():
        if n not in masks:
            assert torch.equal(p, before[n])


def test_apply_masks_is_in_place(tiny_mlp):
    masks = _random_masks(tiny_mlp)
    out = apply_masks(tiny_mlp, masks)
    assert out is tiny_mlp
    assert torch.equal(tiny_mlp.fc2.weight == 0, ~masks["fc2.weight"])


# --- torch.nn.utils.prune interop ----------------------------------------------------------


def test_to_torch_prune_form_and_forward(small_model, batch_for):
    before = _state(small_model)
    masks = _random_masks(small_model, seed=2)
    tp = to_torch_prune(small_model, masks)
    _assert_same_state(before, _state(small_model))  # input untouched
    assert not any(torch_prune.is_pruned(m) for _, m in prunable_layers(small_model))
    for name, module in prunable_layers(tp):
        key = f"{name}.weight"
        assert torch_prune.is_pruned(module)
        assert "weight_orig" in dict(module.named_parameters(recurse=False))
        assert "weight_mask" in dict(module.named_buffers(recurse=False))
        assert "weight" not in dict(module.named_parameters(recurse=False))
        assert torch.equal(module.weight_mask.bool(), masks[key])
        assert torch.equal(module.weight_orig.detach(), before[key])  # originals are kept
    x, _ = batch_for(small_model)
    with torch.no_grad():
        expected = masked_copy(small_model, masks)(x)
        got = tp(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_round_trip_through_torch_prune_recovers_masks_and_weights(small_model):
    masks = _random_masks(small_model, seed=3)
    back, recovered = from_torch_prune(to_torch_prune(small_model, masks))
    assert set(recovered) == set(masks)
    for n in masks:
        assert recovered[n].dtype == torch.bool
        assert torch.equal(recovered[n], masks[n]), n
    _assert_same_state(_state(masked_copy(small_model, masks)), _state(back))
    assert not any(torch_prune.is_pruned(m) for _, m in prunable_layers(back))


def test_from_torch_prune_recovers_l1_unstructured_masks(lenet300):
    tp = copy.deepcopy(lenet300)
    amounts = {"fc1": 0.9, "fc2": 0.5, "fc3": 0.1}
    for name, module in prunable_layers(tp):
        torch_prune.l1_unstructured(module, "weight", amount=amounts[name])
    reference = {f"{n}.weight": m.weight_mask.detach().bool().clone() for n, m in prunable_layers(tp)}
    tp_before = _state(tp)
    plain, masks = from_torch_prune(tp)
    _assert_same_state(tp_before, _state(tp))  # the torch-pruned input is untouched
    assert set(masks) == set(reference)
    for n in reference:
        assert torch.equal(masks[n], reference[n]), n
        numel = reference[n].numel()
        assert int((~masks[n]).sum()) == round(amounts[n.split(".")[0]] * numel)
    # a plain model, pruning made permanent, equal to our masked copy of the original
    assert "fc1.weight_orig" not in plain.state_dict()
    _assert_same_state(_state(masked_copy(lenet300, masks)), _state(plain))
    # and the same masks our own magnitude strategy computes per layer
    ours = prune(lenet300, "magnitude", 0.5).masks["fc2.weight"]
    assert torch.equal(ours, masks["fc2.weight"])


def test_from_torch_prune_of_unpruned_model_has_no_masks(tiny_mlp):
    plain, masks = from_torch_prune(tiny_mlp)
    assert masks == {}
    _assert_same_state(_state(tiny_mlp), _state(plain))


def test_a_model_buffer_named_like_a_mask_is_left_alone(tiny_mlp):
    """Found by an audit: a causal_mask buffer was read as torch-prune's mask of a parameter 'causal'."""
    model = copy.deepcopy(tiny_mlp)
    model.register_buffer("causal_mask", torch.ones(3, 3).tril())
    torch_prune.l1_unstructured(model.fc1, "weight", amount=0.5)
    plain, masks = from_torch_prune(model)
    assert list(masks) == ["fc1.weight"] and int((~masks["fc1.weight"]).sum()) == round(0.5 * 35)
    assert torch.equal(plain.causal_mask, torch.ones(3, 3).tril())


def test_apply_masks_refuses_masks_that_do_not_fit():
    """A (4,) mask on a (3, 4) weight would broadcast and zero a column; a float mask would scale the weights."""
    from sparsity_viz.models import MLP

    model = MLP(4, (3,), 2)
    before = copy.deepcopy(model.state_dict())
    for masks, match in [({"fc1.weight": torch.ones(4, dtype=torch.bool)}, "has shape"),
                         ({"fc1.weight": torch.full((3, 4), 0.5)}, "must be a torch bool tensor, got Tensor of torch.float32"),
                         ({"nope.weight": torch.ones(3, 4, dtype=torch.bool)}, "names no parameter")]:
        with pytest.raises(ValueError, match=match):
            apply_masks(model, masks)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing was changed


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_prune_refuses_non_finite_weights(value):
    """NaN scores have no rank, and a pruned NaN would stay NaN (NaN * 0): a clear ValueError instead."""
    from sparsity_viz.backend.live import live_pruner
    from sparsity_viz.models import MLP

    model = MLP(4, (3,), 2)
    with torch.no_grad():
        model.fc2.weight[0, 0] = value
    for strategy in ("magnitude", "global_magnitude", "random"):
        with pytest.raises(ValueError, match="prune needs finite weights: fc2.weight hold NaN or inf"):
            prune(model, strategy, 0.5)
    with pytest.raises(ValueError, match="A live pruner needs finite weights: fc2.weight"):
        live_pruner(model, "global_magnitude")


def test_load_masks_round_trip_and_bad_files(tmp_path):
    from safetensors.torch import save_file

    from sparsity_viz.checkpoints import CheckpointError
    from sparsity_viz.masks import load_masks, save_masks

    masks = {"fc1.weight": torch.rand(4, 3) > 0.5, "fc2.weight": torch.zeros(2, 4, dtype=torch.bool)}
    save_masks(masks, tmp_path / "m.safetensors")
    back = load_masks(tmp_path / "m.safetensors")
    assert back.keys() == masks.keys() and all(torch.equal(back[n], masks[n]) for n in masks)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    save_file({"fc1.weight": torch.rand(4, 3)}, str(tmp_path / "weights.safetensors"))  # weights, not masks
    for name, message in (("missing.safetensors", "cannot read it"), ("junk.safetensors", "not a valid safetensors file"),
                          ("weights.safetensors", r"not masks, values other than 0 / 1 in fc1\.weight")):
        with pytest.raises(CheckpointError, match=message):  # were SafetensorError / FileNotFoundError
            load_masks(tmp_path / name)
