"""compile_model: predictions equal dense for every sample model, sparsity and format."""

import pytest
import torch

from sparsity_viz.backend import compile_model, kernels
from sparsity_viz.backend.compaction import compact_chain
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.models import MLP, MODELS, build_model
from sparsity_viz.pruning import prune

SPARSITIES = [0.0, 0.5, 0.9, 0.99, 1.0]
FORMATS = [None, ("csr-native",), ("csr-torch",), ("bsr-torch",), ("dense",), ("nm-native",)]


def _input(model, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    if hasattr(model, "in_features"):
        return torch.randn(batch, model.in_features, generator=g)
    return torch.randn(batch, 1, 28, 28, generator=g)


def _check(compiled, ref_model, batch):
    x = _input(ref_model, batch)
    with torch.no_grad():
        ref = ref_model(x)
    out = compiled(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(out.argmax(1), ref.argmax(1))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_every_model_and_sparsity(name, sparsity):
    pruned = prune(build_model(name, seed=0), "global_magnitude", sparsity)
    fmts = FORMATS if name != "lenet5" else [None, ("csr-native",), ("csr-torch",)]
    for fmt in fmts:
        compiled = compile_model(pruned.model, batch_size=8, device="cpu", policy="heuristic", formats=fmt)
        for batch in (1, 8, 33):
            _check(compiled, pruned.model, batch)


@pytest.mark.parametrize("fmt", [("csr-native",), ("csr-torch",), ("dense",)])
def test_a_wrong_input_width_is_refused_as_by_the_original(fmt):
    """Found by an audit: with unused inputs dropped, a 783- or 1000-wide input gave logits (the chain only
    checked the widest kept column) and a 700-wide one an index error from inside."""
    pruned = prune(load_sample("lenet300")[0], "global_magnitude", 0.9)  # trained: border pixels lose every weight
    compiled = compile_model(pruned.model, batch_size=8, device="cpu", policy="heuristic", formats=fmt)
    assert compiled.input_keep is not None and int(compiled.input_keep.max()) < 783  # the last input is dropped
    for _ in range(2):  # the first call builds the native chain, the second takes its fast path
        _check(compiled, pruned.model, 4)
        for shape in [(4, 783), (4, 700), (4, 1000), (4, 28, 29), (0, 783)]:
            with pytest.raises(ValueError, match="the model takes 784 input features per sample"):
                compiled(torch.randn(shape))
        # one sample without its batch dimension: it read "takes 784 ..., got 784" (an audit)
        with pytest.raises(ValueError, match=r"the model takes a batch, \(N, 784\).*got shape \(784,\): add the "
                                             r"batch dimension"):
            compiled(torch.randn(784))
    assert compiled(torch.randn(4, 28, 28)).shape == (4, 10) and compiled(torch.randn(0, 784)).shape == (0, 10)


@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_inputs_of_another_dtype_are_refused_as_by_the_original(name):
    """Found by an audit: float64, float16 and integer inputs were cast to float32 and gave logits, where
    the original raises; a float64 model's outputs came back float32 without a word."""
    model = build_model(name, seed=0)
    pruned = prune(model, "global_magnitude", 0.9).model
    compiled = compile_model(pruned, batch_size=8, device="cpu", policy="heuristic")
    x = _input(pruned, 4)
    for _ in range(2):  # the first call builds the native chain, the second takes its fast path
        _check(compiled, pruned, 4)
        for bad in (x.double(), x.half(), x.long()):
            with pytest.raises(RuntimeError):
                pruned(bad)
            with pytest.raises(TypeError, match=f"takes float32 inputs, got {bad.dtype}"):
                compiled(bad)
    double = compile_model(pruned.double(), batch_size=8, device="cpu", policy="heuristic")
    assert any("converted from torch.float64 to float32" in n for n in double.notices)
    assert not any("converted" in n for n in compiled.notices)
    torch.testing.assert_close(double(x), compiled(x))


def test_masks_argument_and_measured_policy():
    model = build_model("lenet300", seed=0)
    masks = prune(model, "magnitude", 0.9).masks
    compiled = compile_model(model, masks=masks, batch_size=32, device="cpu", repeats=3)
    from sparsity_viz.masks import masked_copy

    _check(compiled, masked_copy(model, masks), 32)
    text = compiled.explain()
    assert "fc1" in text and "density" in text
    table = compiled.plan_table()
    assert list(table.layer) == ["fc1", "fc2", "fc3"] and (table.bytes <= table.dense_bytes).all()


def test_nm_model():
    model = build_model("lenet300", seed=0)
    with torch.no_grad():
        for name in ("fc1", "fc2"):
            w = getattr(model, name).weight
            g = w.view(w.shape[0], -1, 4)
            g.scatter_(-1, g.abs().argsort(-1)[..., :2], 0.0)
    compiled = compile_model(model, batch_size=16, device="cpu", formats=("nm-native",), compact=False)
    assert [p.format for p in compiled.plans[:2]] == ["nm-native", "nm-native"]
    _check(compiled, model, 16)


def test_fallback_compiles_and_says_so(monkeypatch):
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    pruned = prune(build_model("lenet300", seed=0), "global_magnitude", 0.9)
    compiled = compile_model(pruned.model, batch_size=16, device="cpu", policy="heuristic")
    assert all(not p.format.endswith("native") for p in compiled.plans)
    assert any("fallback" in n for n in compiled.notices)
    _check(compiled, pruned.model, 16)
    compiled = compile_model(pruned.model, batch_size=16, device="cpu", force_fallback=True, repeats=3)
    _check(compiled, pruned.model, 16)


def test_compaction_removes_dead_neurons_and_keeps_function():
    model = build_model("digits_mlp", seed=0)
    with torch.no_grad():
        model.fc1.weight[:10] = 0  # 10 dead hidden neurons (constant relu(bias))
        model.fc2.weight[:, 10:15] = 0  # 5 unread neurons
        model.fc1.weight[:, :8] = 0  # 8 unused inputs
    c = compact_chain([model.fc1.weight, model.fc2.weight], [model.fc1.bias, model.fc2.bias], torch.relu)
    assert c.weights[0].shape == (32 - 15, 64 - 8) and c.weights[1].shape == (10, 17)
    compiled = compile_model(model, batch_size=8, device="cpu", policy="heuristic")
    assert compiled.plans[0].compiled_shape == (17, 56)
    _check(compiled, model, 8)


def test_cuda_request_without_gpu_is_clear():
    if torch.cuda.is_available():
        pytest.skip("GPU present")
    from sparsity_viz.devices import DeviceUnavailableError

    with pytest.raises(DeviceUnavailableError):
        compile_model(build_model("digits_mlp", seed=0), device="cuda")
    compiled = compile_model(build_model("digits_mlp", seed=0), device="auto", policy="heuristic")
    assert any("CUDA paths skipped" in n for n in compiled.notices)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_cuda_compiled_matches(sparsity):
    pruned = prune(build_model("lenet300", seed=0), "global_magnitude", sparsity)
    compiled = compile_model(pruned.model, batch_size=64, device="cuda", repeats=3)
    x = _input(pruned.model, 64)
    with torch.no_grad():
        ref = pruned.model(x)
    torch.testing.assert_close(compiled(x.cuda()).cpu(), ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["fc1.weight", "fc2.bias"])
def test_non_finite_weights_are_refused(value, where):
    """A sparse kernel skips pruned weights (0 * inf never happens), so it could not match dense: ValueError."""
    model = MLP(8, (6,), 3)
    with torch.no_grad():
        model.get_parameter(where).view(-1)[0] = value
    for policy in ("heuristic", "measure"):
        with pytest.raises(ValueError, match=f"finite weights: {where} hold NaN or inf"):
            compile_model(model, batch_size=4, device="cpu", policy=policy, repeats=1)


@pytest.mark.parametrize("kw,match", [
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"batch_size": -3}, "batch_size must be a positive integer"),
    ({"batch_size": 2.5}, "batch_size must be a positive integer"),
    ({"batch_size": True}, "batch_size must be a positive integer"),
    ({"formats": ("xyz",)}, "Unknown format\\(s\\) 'xyz'"),
    ({"formats": ()}, "Unknown format\\(s\\) \\(none given\\)"),
    ({"formats": "csr-native"}, "a tuple of format names"),
    ({"policy": "fastest"}, "Unknown policy 'fastest'"),
])
def test_bad_arguments_are_refused(kw, match):
    model = MLP(8, (6,), 3)
    with pytest.raises(ValueError, match=match):
        compile_model(model, device="cpu", **kw)


@pytest.mark.parametrize("arch", ["lenet300", "lenet5"])
@pytest.mark.parametrize("fmt", ["csr-torch", "bsr-torch", "csr-native"])
def test_a_compiled_model_deep_copies_and_pickles_with_any_layer_format(arch, fmt):
    """``copy.deepcopy`` of a torch sparse CSR/BSR tensor raises (no storage), so a compiled model with a csr-torch,
    bsr-torch or im2col layer could be pickled but not deep-copied; both copies now run like the original, and
    running a copy leaves the original's weights alone."""
    import copy
    import pickle

    model = prune(build_model(arch, seed=0), "global_magnitude", 0.9).model.eval()
    compiled = compile_model(model, batch_size=32, device="cpu", formats=(fmt,))
    assert any(p.format.endswith(fmt) for p in compiled.plans)
    x = torch.randn(7, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = compiled(x)
        for clone in (copy.deepcopy(compiled), pickle.loads(pickle.dumps(compiled))):
            torch.testing.assert_close(clone(x), want)
            assert clone.plans is not compiled.plans
        torch.testing.assert_close(compiled(x), want)
