"""Any ``nn.Module`` in the library: models a user builds in a notebook, found by type, not by name.

Four user models: an MLP with non-standard names, a small residual CNN with BatchNorm, an
autoencoder-ish model with a tied weight, and a Transformer-style block (attention + MLP).
On each: discovery, exact masks (against ``torch.nn.utils.prune``), every registry strategy,
reports, masked training, attribution (against Captum), connectivity (chains only, else a
clear message) and the compiled backend (logits equal).
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pytest
import torch
from captum.attr import DeepLift, IntegratedGradients, Saliency
from torch import nn
from torch.nn.utils import prune as torch_prune

from sparsity_viz import STRATEGIES, get_strategy, prune, scheduled_strategy_names
from sparsity_viz.attribution import attribute
from sparsity_viz.backend import compile_model
from sparsity_viz.backend.ops import SparseConv2d, SparseLinear
from sparsity_viz.connectivity import dead_neurons, effective_masks, layer_collapse, layer_masks
from sparsity_viz.data import Dataset
from sparsity_viz.graph import build_graph
from sparsity_viz.layers import chain_layers, chain_problem, prunable_weights
from sparsity_viz.models import MLP, prunable_layers, prunable_parameters
from sparsity_viz.moe.routing import Router
from sparsity_viz.reports import sparsity_report
from sparsity_viz.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


# --- four models a user writes in a notebook -----------------------------------------------


class NamedMLP(nn.Module):
    """(N, 4) -> encoder (Linear 16, Linear 12) -> head (3)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU())
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        return self.head(self.encoder(x))


class ResCNN(nn.Module):
    """(N, 1, 8, 8) -> conv-BN-ReLU -> residual block (two conv-BN, skip) -> pool -> Linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.bn0, self.relu0 = nn.BatchNorm2d(4), nn.ReLU()
        self.conv_a, self.bn_a, self.relu_a = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.conv_b, self.bn_b, self.relu_b = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = self.relu0(self.bn0(self.stem(x)))  # (N, 4, 8, 8)
        y = self.bn_b(self.conv_b(self.relu_a(self.bn_a(self.conv_a(x)))))
        x = self.relu_b(x + y)  # the skip
        return self.head(self.pool(x).flatten(1))  # (N, 3)


class TiedAE(nn.Module):
    """(N, 6) -> enc -> dec (the same weight as enc) -> head: a chain with one tied weight."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(6, 6)
        self.dec = nn.Linear(6, 6)
        self.dec.weight = self.enc.weight  # tied
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.dec(torch.relu(self.enc(x)))))


class Block(nn.Module):
    """(N, 5, 8) tokens -> pre-norm attention + MLP, both residual -> mean over tokens -> head (3)."""

    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.ln2 = nn.LayerNorm(8)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.ln2(x))
        return self.head(x.mean(1))


EXPECTED = {
    "mlp": ["encoder.0.weight", "encoder.2.weight", "head.weight"],
    "cnn": ["stem.weight", "conv_a.weight", "conv_b.weight", "head.weight"],
    "tied": ["enc.weight", "head.weight"],
    "block": ["attn.in_proj_weight", "attn.out_proj.weight", "mlp.0.weight", "mlp.2.weight", "head.weight"],
}
BUILD = {"mlp": NamedMLP, "cnn": ResCNN, "tied": TiedAE, "block": Block}
SHAPES = {"mlp": (4,), "cnn": (1, 8, 8), "tied": (6,), "block": (5, 8)}
KINDS = list(BUILD)


def _model(kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = BUILD[kind]()
    _set_distinct_weights(model, seed)
    return model


def _set_distinct_weights(model: nn.Module, seed: int) -> None:
    """Distinct |w| over all prunable weights (no ties), so every reference agrees element for element."""
    params = prunable_parameters(model)
    n = sum(p.numel() for p in params.values())
    g = torch.Generator().manual_seed(seed)
    values = ((torch.randperm(n, generator=g).double() + 1) / n * 0.5).float()
    values *= torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
    offset = 0
    with torch.no_grad():
        for p in params.values():
            p.copy_(values[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def _dataset(kind: str, n: int = 96) -> Dataset:
    """A tiny separable 3-class problem shaped for ``kind``'s input."""
    g = torch.Generator().manual_seed(1)
    shape = SHAPES[kind]
    y = torch.arange(n) % 3
    x = torch.randn(n, *shape, generator=g) * 0.3
    x.view(n, -1)[:, :3] += torch.nn.functional.one_hot(y, 3).float() * 2.0  # the class lights one feature
    split = n * 3 // 4
    return Dataset(f"toy_{kind}", x[:split], y[:split], x[split:], y[split:], shape, ("a", "b", "c"),
                   "image" if len(shape) == 3 else "points")


def _batch(kind: str):
    ds = _dataset(kind)
    return ds.x_train[:32], ds.y_train[:32]


@pytest.fixture(scope="module")
def models():
    return {kind: _model(kind) for kind in KINDS}


# --- discovery -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_discovery_finds_exactly_the_expected_parameters(kind, models):
    assert list(prunable_parameters(models[kind])) == EXPECTED[kind]


def test_discovery_details():
    block, tied = _model("block"), _model("tied")
    # biases follow their weights: attention's packed in_proj_bias with in_proj_weight
    assert list(prunable_parameters(block, include_bias=True)) == [
        "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
        "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias", "head.weight", "head.bias"]
    # prunable_layers: the layers owning a `weight`, the tied copy once
    assert [n for n, _ in prunable_layers(tied)] == ["enc", "head"]
    assert [n for n, _ in prunable_layers(block)] == ["attn.out_proj", "mlp.0", "mlp.2", "head"]
    # attention with q/k/v of different sizes: three separate projection weights
    mha = nn.MultiheadAttention(8, 2, kdim=4, vdim=6)
    assert list(prunable_parameters(mha)) == ["q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"]


def test_custom_layers_opt_in_or_out_with_one_line_and_the_router_stays_out():
    class Scaled(nn.Module):
        sparsity_viz_prunable = ("weight",)

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(3, 4))
            self.scale = nn.Parameter(torch.ones(3))

    class FrozenLinear(nn.Linear):
        sparsity_viz_prunable = ()

    class Broken(nn.Module):
        sparsity_viz_prunable = ("kernel",)

    net = nn.Sequential(Scaled(), nn.Conv1d(2, 3, 3), FrozenLinear(3, 3), Router(4, 3))
    assert list(prunable_parameters(net)) == ["0.weight", "1.weight"]
    with pytest.raises(ValueError, match=r"Broken declares sparsity_viz_prunable = \('kernel',\).*'kernel' is not"):
        prunable_parameters(nn.Sequential(Broken()))


def test_tied_weight_is_one_entry_named_once_and_pruned_once():
    lm = nn.Module()
    lm.embed = nn.Embedding(10, 6)  # not a prunable type
    lm.head = nn.Linear(6, 10, bias=False)
    lm.head.weight = lm.embed.weight  # the LM-head tie: named after its first owner
    assert list(prunable_parameters(lm)) == ["embed.weight"]
    [entry] = prunable_weights(lm)
    assert entry.module is lm.head and entry.attr == "weight"

    tied = _model("tied")
    pruned = prune(tied, "magnitude", 0.5)
    assert list(pruned.masks) == ["enc.weight", "head.weight"]
    assert pruned.model.dec.weight is pruned.model.enc.weight  # still tied after the copy
    assert int((pruned.model.dec.weight == 0).sum()) == round(0.5 * 36)
    report = sparsity_report(pruned.model, pruned.masks)
    assert report["layer"].tolist() == ["enc", "head", "total"]
    total = report.iloc[-1]
    assert (total["parameters"], total["zeros"]) == (36 + 18, 18 + 9)  # the tied 6x6 counted once


# --- masks: exact counts, agreement with torch.nn.utils.prune -------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sparsity", [0.3, 0.8])
def test_magnitude_and_random_are_exact_and_match_torch_prune(kind, sparsity, models):
    model = models[kind]
    entries = prunable_weights(model)
    got = prune(model, "magnitude", sparsity).masks
    ref = copy.deepcopy(model)
    refs = prunable_weights(ref)  # listed before torch's prune renames the parameters
    for e in refs:
        torch_prune.l1_unstructured(e.module, e.attr, amount=sparsity)
    for e, r in zip(entries, refs):
        assert int((~got[e.key]).sum()) == round(sparsity * e.param.numel())
        assert torch.equal(got[e.key], getattr(r.module, f"{e.attr}_mask").bool()), e.key

    got = prune(model, "global_magnitude", sparsity).masks
    ref = copy.deepcopy(model)
    refs = prunable_weights(ref)
    torch_prune.global_unstructured([(e.module, e.attr) for e in refs], torch_prune.L1Unstructured, amount=sparsity)
    total = sum(e.param.numel() for e in entries)
    assert sum(int((~m).sum()) for m in got.values()) == round(sparsity * total)
    for e, r in zip(entries, refs):
        assert torch.equal(got[e.key], getattr(r.module, f"{e.attr}_mask").bool()), e.key

    got = prune(model, "random", sparsity, seed=3).masks
    assert {k: int((~m).sum()) for k, m in got.items()} == {e.key: round(sparsity * e.param.numel()) for e in entries}


@pytest.mark.parametrize("kind", KINDS)
def test_every_registry_strategy_prunes_exactly_or_says_why(kind, models):
    model, batch = models[kind], _batch(kind)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, cls in STRATEGIES.items():
        for scope in cls.scopes:
            strategy = get_strategy(name, scope=scope, seed=0)
            if name == "synflow":
                strategy.iterations = 5  # the rule, not the 100 rounds
            pruned = prune(model, strategy, 0.5, batch=batch)  # data-free ones ignore it (SynFlow: its shape)
            assert set(pruned.masks) == set(EXPECTED[kind]), name
            expected = strategy.expected_zeros(model, 0.5)
            zeros = {k: int((~m).sum()) for k, m in pruned.masks.items()}
            if isinstance(expected, dict):
                assert zeros == expected, f"{name}-{scope}"
            else:
                assert sum(zeros.values()) == expected, f"{name}-{scope}"
            for key, mask in pruned.masks.items():  # the pruned copy carries its masks
                assert not bool(dict(pruned.model.named_parameters())[key][~mask].any())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # input untouched
    for name in scheduled_strategy_names():  # prune while training, exact at the end
        strategy = get_strategy(name)
        result = strategy.run(model, _dataset(kind), 0.5, TrainConfig(epochs=1, lr=1e-2, batch_size=24, device="cpu"))
        expected = strategy.expected_zeros(model, 0.5)
        zeros = {k: int((~m).sum()) for k, m in result.masks.items()}
        assert (zeros if isinstance(expected, dict) else sum(zeros.values())) == expected, name
        params = dict(result.model.named_parameters())
        assert all(int((params[k][~m] != 0).sum()) == 0 for k, m in result.masks.items()), name
    if kind in ("cnn", "block"):  # no batch: SynFlow cannot guess a branching model's input shape
        with pytest.raises(ValueError, match=r"SynFlow cannot read the input shape off .*pass batch="):
            prune(model, "synflow", 0.5)


# --- reports --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sparsity_report_numbers_are_exact(kind, models):
    model = models[kind]
    pruned = prune(model, "magnitude", 0.75)
    report = sparsity_report(pruned.model, pruned.masks)
    rows = report.iloc[:-1]
    params = prunable_parameters(model)
    assert rows["layer"].tolist() == [k.removesuffix(".weight") for k in params]
    assert rows["parameters"].tolist() == [p.numel() for p in params.values()]
    assert rows["zeros"].tolist() == [round(0.75 * p.numel()) for p in params.values()]
    assert rows["csr_bytes"].tolist() == [(p.numel() - round(0.75 * p.numel())) * 8 + (p.shape[0] + 1) * 4
                                          for p in params.values()]
    total = report.iloc[-1]
    assert total["parameters"] == sum(p.numel() for p in params.values())
    assert total["zeros"] == sum(round(0.75 * p.numel()) for p in params.values())
    if kind in ("cnn", "block"):  # not chains: dead neurons are unknown, not made up
        assert report["dead_neurons"].isna().all()
    else:
        assert report["dead_neurons"].notna().all()


# --- training -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_training_keeps_masked_weights_at_zero(kind, models):
    pruned = prune(models[kind], "magnitude", 0.6)
    result = train(pruned.model, _dataset(kind), TrainConfig(epochs=2, lr=1e-2, batch_size=16, device="cpu"),
                   masks=pruned.masks)
    params = dict(result.model.named_parameters())
    moved = False
    for key, mask in pruned.masks.items():
        assert int((params[key][~mask] != 0).sum()) == 0, key
        moved |= not torch.equal(params[key][mask], dict(pruned.model.named_parameters())[key][mask])
    assert moved  # it did train
    if kind == "tied":
        assert result.model.dec.weight is result.model.enc.weight


# --- attribution ----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Setting forward, backward hooks:UserWarning")
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "deeplift"])
def test_attribution_equals_captum_called_directly(kind, method, models):
    model = prune(models[kind], "magnitude", 0.5).model
    x, y = _batch(kind)
    x, y = x[:6], y[:6]
    got = attribute(model, x, y, method)
    work = copy.deepcopy(model).eval()
    inputs = x.clone().requires_grad_(True)
    if method == "saliency":
        want = Saliency(work).attribute(inputs, target=y)
    elif method == "integrated_gradients":
        want = IntegratedGradients(work).attribute(inputs, target=y, baselines=torch.zeros_like(x), n_steps=32)
    else:
        want = DeepLift(work).attribute(inputs, target=y, baselines=torch.zeros_like(x))
    torch.testing.assert_close(got, want.detach())
    assert got.abs().sum() > 0


# --- connectivity: chains only --------------------------------------------------------------


def test_connectivity_on_a_renamed_mlp_equals_the_bundled_mlp():
    user = _model("mlp")
    bundled = MLP(4, (16, 12), 3)
    with torch.no_grad():
        for (_, a), (_, b) in zip(prunable_layers(user), prunable_layers(bundled)):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
    masks = prune(user, "magnitude", 0.85).masks
    with torch.no_grad():  # cut every weight into encoder unit 5: it is dead
        masks["encoder.0.weight"][5] = False
    renamed = dict(zip(["fc1.weight", "fc2.weight", "fc3.weight"], masks.values()))
    lm = layer_masks(user, masks)
    assert list(lm) == EXPECTED["mlp"]
    dead_user, dead_ref = dead_neurons(user, masks), dead_neurons(bundled, renamed)
    assert list(dead_user) == ["input", "encoder.0", "encoder.2", "head"]
    assert bool(dead_user["encoder.0"][5])
    for a, b in zip(dead_user.values(), dead_ref.values()):
        assert torch.equal(a, b)
    assert layer_collapse(user, masks).alive_units["encoder.0"] == layer_collapse(bundled, renamed).alive_units["fc1"]
    for a, b in zip(effective_masks(lm).values(), effective_masks(layer_masks(bundled, renamed)).values()):
        assert torch.equal(a, b)
    graph = build_graph(user, masks)
    assert graph.columns == ("input", "encoder.0", "encoder.2", "head")
    assert [s.surviving for s in graph.layers] == [s.surviving for s in build_graph(bundled, renamed).layers]


def test_connectivity_follows_forward_order_not_registration_order():
    class Reversed(nn.Module):
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(5, 2)  # registered first, called last
            self.inp = nn.Linear(3, 5)

        def forward(self, x):
            return self.out(torch.relu(self.inp(x).view(x.size(0), -1)))

    model = Reversed()
    assert [layer.name for layer in chain_layers(model)] == ["inp", "out"]
    assert list(dead_neurons(model)) == ["input", "inp", "out"]


def test_connectivity_reads_a_tied_chain_layer_by_layer():
    tied = _model("tied")
    masks = prune(tied, "magnitude", 0.5).masks
    lm = layer_masks(tied, masks)
    assert list(lm) == ["enc.weight", "dec.weight", "head.weight"]
    assert torch.equal(lm["dec.weight"], masks["enc.weight"])


@pytest.mark.parametrize("kind", ["cnn", "block"])
def test_connectivity_refuses_a_model_that_is_not_a_chain(kind, models):
    model = models[kind]
    pattern = rf"connectivity needs a chain of layers; {type(model).__name__} has "
    pattern += "a residual/branch" if kind == "cnn" else "'attn.in_proj_weight' in a MultiheadAttention"
    for call in (dead_neurons, layer_collapse, build_graph, layer_masks):
        with pytest.raises(ValueError, match=pattern):
            call(model)
    assert chain_problem(model) is not None


@pytest.mark.parametrize("kind", ["mlp", "cnn", "block"])
def test_a_sweep_reports_effective_sparsity_only_on_a_chain(kind, models):
    from sparsity_viz.experiments import sweep

    frame = sweep(models[kind], _dataset(kind), ["magnitude"], [0.0, 0.5], seeds=(0,), device="cpu")
    assert frame["achieved_sparsity"].tolist() == pytest.approx([0.0, 0.5], abs=0.01)
    if kind == "mlp":  # a chain: paths input -> output are defined and counted
        assert (frame["effective_sparsity"] >= frame["achieved_sparsity"] - 1e-9).all()
    else:  # a residual or attention: no number rather than a wrong one
        assert frame["effective_sparsity"].isna().all()


# --- the backend ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlp", "cnn", "block"])
def test_compiled_model_gives_the_models_logits_with_unknown_layers_left_alone(kind, models):
    pruned = prune(models[kind], "magnitude", 0.8)
    x = _dataset(kind).x_test
    compiled = compile_model(pruned.model, batch_size=8, device="cpu", policy="heuristic", formats=("csr-torch",),
                             calibration=x)
    want = copy.deepcopy(pruned.model).eval()(x)
    torch.testing.assert_close(compiled(x), want, rtol=1e-5, atol=1e-5)
    swapped = [n for n, m in compiled.module.named_modules() if isinstance(m, (SparseLinear, SparseConv2d))]
    kept = [type(m).__name__ for m in compiled.module.modules()]
    if kind == "mlp":
        assert swapped == ["encoder.0", "encoder.2", "head"]
    elif kind == "cnn":
        assert swapped == ["stem", "conv_a", "conv_b", "head"]
        assert kept.count("BatchNorm2d") == 3
    else:
        assert swapped == ["mlp.0", "mlp.2", "head"]
        assert "MultiheadAttention" in kept
        plan = compiled.plan_table().set_index("layer")
        assert plan.loc["attn.in_proj_weight", "format"] == "dense"
        assert plan.loc["attn.out_proj", "format"] == "dense"


# --- exports and sizes: the tied weight and attention's in_proj_weight included ----------------------


@pytest.mark.parametrize("kind", KINDS)
def test_torch_prune_form_computes_the_pruned_model_and_reads_back_as_it(kind, models):
    """The export had masked a tied weight in the first of its two modules only: the other kept the raw,
    unpruned Parameter, so the .pt download gave a dense ``dec.weight`` (an audit)."""
    import io

    from sparsity_viz.exports import torch_prune_bytes
    from sparsity_viz.masks import from_torch_prune, to_torch_prune

    pruned = prune(models[kind], "magnitude", 0.7)
    form = to_torch_prune(models[kind], pruned.masks).eval()
    x = _dataset(kind).x_test[:8]
    with torch.no_grad():
        torch.testing.assert_close(form(x), copy.deepcopy(pruned.model).eval()(x))
    state = torch.load(io.BytesIO(torch_prune_bytes(models[kind], pruned.masks)), weights_only=True)
    folded = {k.removesuffix("_mask"): state[k.replace("_mask", "_orig")] * v for k, v in state.items()
              if k.endswith("_mask")}
    reference = copy.deepcopy(pruned.model).state_dict()
    assert folded and all(torch.equal(v, reference[k]) for k, v in folded.items())
    if kind == "tied":
        assert torch.equal(folded["dec.weight"], folded["enc.weight"]) and (folded["dec.weight"] == 0).any()
    back, masks = from_torch_prune(form)
    assert list(masks) == list(pruned.masks) and all(torch.equal(masks[k], pruned.masks[k]) for k in masks)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), form(x))
    if kind == "tied":
        assert back.dec.weight is back.enc.weight  # tied again, one mask


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_checkpoint_round_trips_every_kind(kind, models):
    """``save_sparse`` raised on the tied model: its dense-size reference handed safetensors one tensor under two
    names (an audit)."""
    from sparsity_viz.backend import load_sparse, save_sparse

    pruned = prune(models[kind], "magnitude", 0.7)
    loaded = load_sparse(save_sparse(pruned.model).data)
    fresh = _model(kind, seed=1)
    fresh.load_state_dict(loaded.state_dict)
    x = _dataset(kind).x_test[:8]
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), copy.deepcopy(pruned.model).eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_sizes_and_per_kind_bits_cover_every_prunable_weight(kind, models):
    """Sizes and per-kind bit widths listed only ``weight``-owning layers: attention's in_proj_weight was left out
    of the byte totals, and quantizing per kind or sizing a quantized attention model raised (an audit)."""
    from sparsity_viz.compression.size import size_table
    from sparsity_viz.quantization.qat import layer_bits, quantize_layers

    model = prune(models[kind], "magnitude", 0.5).model
    params = prunable_parameters(model)
    table = size_table(model).set_index("layer")
    assert table.loc["total", "weights"] == sum(p.numel() for p in params.values())
    assert table.loc["total", "nonzeros"] == sum(int((p != 0).sum()) for p in params.values())
    quantized = quantize_layers(model, "uniform_symmetric", {"conv": 8, "fc": 4})
    assert {n: t.bits for n, t in quantized.tensors.items()} == {n: 8 if p.dim() > 2 else 4 for n, p in params.items()}
    assert size_table(model, quantized=quantized)["quantized_bytes"].notna().all()
    conv1d = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.Linear(6, 2))  # a conv, as its index width says
    assert layer_bits(conv1d, {"conv": 8, "fc": 5}) == {"0.weight": 8, "2.weight": 5}


def test_deep_compression_refuses_an_architecture_it_cannot_record_before_training(monkeypatch):
    """It trained, quantized and trained again, then failed saving the checkpoint (an audit): now at once."""
    import sparsity_viz.compression.pipeline as pipeline

    monkeypatch.setattr(pipeline, "evaluate_dataset", lambda *a, **k: pytest.fail("it started working"))
    with pytest.raises(ValueError, match="records the architecture.*not a Block"):
        pipeline.compress(_model("block"), _dataset("block"), finetune_epochs=1, qat_epochs=1)


# --- the README's notebook example runs -------------------------------------------------------


def test_readme_own_model_snippet_runs():
    text = (ROOT / "README.md").read_text()
    section = text[re.search(r"^## Your own model$", text, re.M).start():]  # not "### Your own model and data"
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert math.isclose(scope["report"].iloc[-1]["sparsity"], 0.8, abs_tol=0.01)
