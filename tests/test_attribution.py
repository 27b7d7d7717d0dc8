"""Attribution: every method equals Captum called directly; models are never mutated."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from captum.attr import DeepLift, InputXGradient, IntegratedGradients, Occlusion, Saliency
from torch import nn

from sparsity_viz.attribution import (
    DEFAULT_IG_STEPS,
    METHODS,
    attribute,
    compare_attributions,
    default_occlusion_window,
    gradient_field,
    rank_correlation,
    unshare_modules,
)
from sparsity_viz.models import build_model

# Captum's DeepLift, called directly as the reference, announces its hooks every call.
pytestmark = pytest.mark.filterwarnings("ignore:Setting forward, backward hooks:UserWarning")


class UniqueLeNet5(nn.Module):
    """LeNet-5 with one activation / pool module per use (what Captum's DeepLift needs)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)
        self.a1, self.a2, self.a3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.p1, self.p2 = nn.MaxPool2d(2), nn.MaxPool2d(2)

    def forward(self, x):
        x = self.p1(self.a1(self.conv1(x)))
        x = self.p2(self.a2(self.conv2(x)))
        return self.fc2(self.a3(self.fc1(x.flatten(1))))


def _mlp_as_sequential(mlp) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(1, mlp.num_layers + 1):
        layers.append(getattr(mlp, f"fc{i}"))
        if i < mlp.num_layers:
            layers.append(nn.ReLU())
    import copy

    return copy.deepcopy(nn.Sequential(*layers)).eval()


def _captum(model, method, x, target):
    """Captum called directly with the defaults ``attribute`` documents."""
    if method == "saliency":
        return Saliency(model).attribute(x, target=target)
    if method == "integrated_gradients":
        return IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=DEFAULT_IG_STEPS
        )
    if method == "deeplift":
        return DeepLift(model).attribute(x, baselines=torch.zeros_like(x), target=target)
    if method == "input_x_gradient":
        return InputXGradient(model).attribute(x, target=target)
    if method == "occlusion":
        window, strides = default_occlusion_window(tuple(x.shape[1:]))
        return Occlusion(model).attribute(
            x, sliding_window_shapes=window, strides=strides, baselines=0.0, target=target
        )
    raise AssertionError(method)


@pytest.fixture(scope="module")
def digits_mlp():
    return build_model("digits_mlp", seed=0)


def test_methods_table_has_the_required_methods():
    for name in ("saliency", "integrated_gradients", "deeplift", "input_x_gradient", "occlusion"):
        assert name in METHODS and METHODS[name].label
    with pytest.raises(ValueError, match="Unknown attribution method"):
        attribute(build_model("moons_mlp", seed=0), torch.zeros(1, 2), 0, "nope")


@pytest.mark.parametrize("method", list(METHODS))
def test_equals_captum_on_digits_mlp(method, digits_mlp):
    torch.manual_seed(0)
    x = torch.randn(5, 1, 8, 8)
    target = torch.tensor([0, 1, 2, 3, 4])
    ours = attribute(digits_mlp, x, target, method)
    # Captum straight on an equivalent model whose ReLUs are not shared (DeepLift needs that)
    reference = _captum(_mlp_as_sequential(digits_mlp), method, x.clone().requires_grad_(True), target)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, reference.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "input_x_gradient", "occlusion"])
def test_equals_captum_on_the_model_itself(method):
    model = build_model("moons_mlp", seed=1)
    x = torch.randn(7, 2)
    ours = attribute(model, x, 1, method)
    reference = _captum(build_model("moons_mlp", seed=1).eval(), method, x.clone().requires_grad_(True), 1)
    torch.testing.assert_close(ours, reference.detach())


@pytest.mark.parametrize("method", ["deeplift", "occlusion"])
def test_equals_captum_on_lenet5(method):
    model = build_model("lenet5", seed=0)
    twin = UniqueLeNet5()
    twin.load_state_dict(model.state_dict())
    twin.eval()
    x = torch.randn(2, 1, 28, 28)
    ours = attribute(model, x, 3, method)
    reference = _captum(twin, method, x.clone().requires_grad_(True), 3)
    torch.testing.assert_close(ours, reference.detach(), rtol=1e-4, atol=1e-6)


def test_kwargs_override_defaults(digits_mlp):
    x = torch.randn(2, 1, 8, 8)
    ours = attribute(digits_mlp, x, 1, "integrated_gradients", n_steps=5, baselines=torch.ones_like(x))
    ref = IntegratedGradients(_mlp_as_sequential(digits_mlp)).attribute(
        x, baselines=torch.ones_like(x), target=1, n_steps=5
    )
    torch.testing.assert_close(ours, ref)


def test_model_is_not_mutated():
    model = build_model("lenet5", seed=0).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in METHODS:
        attribute(model, torch.randn(1, 1, 28, 28), 0, method)
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def test_unshare_modules_gives_each_use_its_own_module():
    model = build_model("lenet300", seed=0)
    work = unshare_modules(model)
    relus = [m for m in work.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 2 and relus[0] is not relus[1]
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(work(x), model(x))


def test_unshare_modules_traces_once_per_architecture(monkeypatch):
    """torch.fx patches nn.Module for every thread while it traces: a class on one server must not trace per run."""
    from sparsity_viz import layers

    traces = []
    real = layers._OwnThreadTracer.trace  # every trace in the project (layers.fx_trace)
    monkeypatch.setattr(layers._OwnThreadTracer, "trace",
                        lambda self, m, *a, **k: traces.append(type(m)) or real(self, m, *a, **k))
    monkeypatch.setattr(layers, "_TRACED", {})
    first, second = build_model("lenet5", seed=0), build_model("lenet5", seed=1)  # same architecture, other weights
    x = torch.randn(4, 1, 28, 28)
    for model in (first, second, first):
        work = unshare_modules(model)
        torch.testing.assert_close(work(x), model(x))
        assert not any(p is q for p in work.parameters() for q in model.parameters())  # a copy, never the model
    assert len(traces) == 1
    twin = UniqueLeNet5()
    twin.load_state_dict(second.state_dict())
    reference = _captum(twin.eval(), "deeplift", x.clone().requires_grad_(True), 3)
    torch.testing.assert_close(attribute(second, x, 3, "deeplift"), reference.detach(), rtol=1e-4, atol=1e-6)
    assert len(traces) == 1


def test_default_occlusion_windows():
    assert default_occlusion_window((2,)) == ((1,), (1,))
    assert default_occlusion_window((1, 8, 8)) == ((1, 2, 2), (1, 1, 1))
    assert default_occlusion_window((1, 28, 28)) == ((1, 4, 4), (1, 2, 2))


def test_rank_correlation_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=200).astype(float)  # many ties, like zeroed saliency
    b = a + rng.normal(0, 2, size=200)
    assert rank_correlation(torch.tensor(a), torch.tensor(b)) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(np.zeros(5), np.arange(5.0)))
    with pytest.raises(ValueError):
        rank_correlation(np.zeros(3), np.zeros(4))


def test_compare_attributions(digits_mlp):
    x = torch.randn(3, 1, 8, 8)
    same = compare_attributions(digits_mlp, digits_mlp, x, 2, "saliency")
    assert same.dense.shape == x.shape and same.pruned.shape == x.shape
    assert torch.equal(same.difference, torch.zeros_like(x))
    torch.testing.assert_close(same.similarity, torch.ones(3, dtype=torch.float64))
    assert same.mean_similarity == pytest.approx(1.0)

    pruned = build_model("digits_mlp", seed=0)
    with torch.no_grad():
        pruned.fc1.weight[:, ::2] = 0
    cmp = compare_attributions(digits_mlp, pruned, x, 2, "input_x_gradient")
    torch.testing.assert_close(cmp.difference, cmp.pruned - cmp.dense)
    expected = [rank_correlation(d, p) for d, p in zip(cmp.dense, cmp.pruned)]
    torch.testing.assert_close(cmp.similarity, torch.tensor(expected, dtype=torch.float64))


def test_gradient_field_equals_autograd():
    model = build_model("moons_mlp", seed=0)
    field = gradient_field(model, (-1.0, 1.0), (-2.0, 2.0), target=1, resolution=5)
    assert field.grad.shape == (5, 5, 2) and field.score.shape == (5, 5)
    j, i = 3, 1  # row = y index, column = x index
    p = torch.tensor([[float(field.xs[i]), float(field.ys[j])]], requires_grad=True)
    prob = torch.softmax(model(p), 1)[0, 1]
    prob.backward()
    torch.testing.assert_close(field.grad[j, i], p.grad[0])
    torch.testing.assert_close(field.score[j, i], prob.detach())


# --- keyword pass-through: constructor vs attribute(), per method --------------------------------


class _Scaled(nn.Module):
    """A model with an extra forward argument (for ``additional_forward_args``)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x, scale):
        return self.inner(x) * scale


# One valid keyword of Captum's ``attribute()`` per registry method (a new method needs an entry).
ATTRIBUTE_KWARG = {
    "saliency": {"abs": False},
    "integrated_gradients": {"method": "riemann_trapezoid"},
    "deeplift": {"return_convergence_delta": True},
    "input_x_gradient": {"additional_forward_args": (2.5,)},
    "occlusion": {"perturbations_per_eval": 3},
}


def _captum_with(model, method, x, target, init_kw=None, call_kw=None):
    """Captum called directly: ``attribute``'s documented defaults, then the given keywords."""
    x = x.clone().requires_grad_(True)
    call = {}
    if method in ("integrated_gradients", "deeplift"):
        call["baselines"] = torch.zeros_like(x)
    if method == "integrated_gradients":
        call["n_steps"] = DEFAULT_IG_STEPS
    if method == "occlusion":
        window, strides = default_occlusion_window(tuple(x.shape[1:]))
        call.update(sliding_window_shapes=window, strides=strides, baselines=0.0)
    call.update(call_kw or {})
    out = METHODS[method].cls(model, **(init_kw or {})).attribute(x, target=target, **call)
    return (out[0] if isinstance(out, tuple) else out).detach()


def test_every_method_has_a_keyword_case():
    assert set(ATTRIBUTE_KWARG) == set(METHODS)


@pytest.mark.parametrize("method", list(METHODS))
def test_attribute_keyword_reaches_captum(method, digits_mlp):
    torch.manual_seed(1)
    x = torch.randn(3, 1, 8, 8)
    kw = ATTRIBUTE_KWARG[method]
    ref_model = _mlp_as_sequential(digits_mlp)
    ours_model = digits_mlp
    if "additional_forward_args" in kw:
        ours_model, ref_model = _Scaled(digits_mlp), _Scaled(ref_model)
    ours = attribute(ours_model, x, 2, method, **kw)
    reference = _captum_with(ref_model, method, x, 2, call_kw=kw)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    if method in ("saliency", "integrated_gradients"):  # the keyword changed something
        assert not torch.allclose(ours, attribute(digits_mlp, x, 2, method))


@pytest.mark.parametrize("method", [m for m in METHODS if METHODS[m].init_keywords])
def test_constructor_keyword_reaches_captum(method, digits_mlp):
    x = torch.randn(3, 1, 8, 8)
    assert "multiply_by_inputs" in METHODS[method].init_keywords
    ours = attribute(digits_mlp, x, 2, method, multiply_by_inputs=False)
    reference = _captum_with(_mlp_as_sequential(digits_mlp), method, x, 2, init_kw={"multiply_by_inputs": False})
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ours, attribute(digits_mlp, x, 2, method))


def test_integrated_gradients_both_kinds_of_keyword_together(digits_mlp):
    x = torch.randn(2, 1, 8, 8)
    ours = attribute(digits_mlp, x, 1, "integrated_gradients", method="riemann_left", multiply_by_inputs=False,
                     n_steps=7)
    reference = _captum_with(_mlp_as_sequential(digits_mlp), "integrated_gradients", x, 1,
                             init_kw={"multiply_by_inputs": False}, call_kw={"method": "riemann_left", "n_steps": 7})
    torch.testing.assert_close(ours, reference)


@pytest.mark.parametrize("method", list(METHODS))
def test_unknown_keyword_names_the_accepted_ones(method, digits_mlp):
    info = METHODS[method]
    with pytest.raises(ValueError) as err:
        attribute(digits_mlp, torch.zeros(1, 1, 8, 8), 0, method, no_such_option=1)
    msg = str(err.value)
    assert "no_such_option" in msg and info.name in msg
    for kw in (*info.init_keywords, *info.attribute_keywords):
        assert kw in msg
    with pytest.raises(ValueError, match="no_such_option"):
        compare_attributions(digits_mlp, digits_mlp, torch.zeros(1, 1, 8, 8), 0, method, no_such_option=1)


def test_target_by_keyword_is_the_same_as_by_position():
    from sparsity_viz.attribution import attribute
    from sparsity_viz.models import build_model

    model = build_model("moons_mlp", seed=0)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(attribute(model, x, target=1), attribute(model, x, 1))
    torch.testing.assert_close(attribute(model, x, 1, "integrated_gradients", method="riemann_trapezoid"),
                               attribute(model, x, None, "integrated_gradients", target=1, method="riemann_trapezoid"))
    with pytest.raises(TypeError, match="both"):
        attribute(model, x, 1, target=1)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "input_x_gradient"])
def test_a_float64_model_is_explained_in_float64_as_captum_does(method):
    """Found by an audit: inputs were cast to float32, so a float64 model failed (Float and Double) where Captum works."""
    model = build_model("moons_mlp", seed=2).double().eval()
    x = torch.randn(6, 2, dtype=torch.float64)
    ours = attribute(model, x, 1, method)
    reference = _captum(build_model("moons_mlp", seed=2).double().eval(), method, x.clone().requires_grad_(True), 1)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, reference.detach())


@pytest.mark.parametrize("target,message", [
    (12, r"target must be a class in \[0, 10\), got 12"),
    (-1, r"target must be a class in \[0, 10\), got -1"),  # Captum read it as the last class
    (1.5, "target must be a class index"),
    (True, "target must be a class index"),
    (torch.tensor([1.0, 2.0, 3.0]), "class indices"),
    (torch.tensor([1, 2]), r"one per sample \(3\)"),
    (torch.tensor([1, 2, 10]), r"must lie in \[0, 10\), got 1 to 10"),
    (None, "target is needed: the model has 10 outputs"),  # Captum's AssertionError named no class
    ([1, 2.5, 3], r"class indices \(integers\), got \[1, 2.5, 3\]"),
    ([1, 2], r"one per sample \(3\)"),
])
def test_a_bad_target_is_one_clear_error(digits_mlp, target, message):
    """Captum raised IndexError (12 of 10 classes) or AssertionError (1.5) from inside, or took -1 silently."""
    with pytest.raises(ValueError, match=message):
        attribute(digits_mlp, torch.randn(3, 1, 8, 8), target)


def test_a_list_target_is_one_class_per_sample_as_in_captum(digits_mlp):
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(attribute(digits_mlp, x, [4, 0, 9]), attribute(digits_mlp, x, torch.tensor([4, 0, 9])))
    reference = Saliency(copy.deepcopy(digits_mlp).eval()).attribute(x.clone().requires_grad_(True), target=[4, 0, 9])
    torch.testing.assert_close(attribute(digits_mlp, x, [4, 0, 9]), reference)


def test_no_samples_or_nan_weights_are_refused_and_nan_maps_have_no_rank_correlation(digits_mlp):
    import copy

    with pytest.raises(ValueError, match="at least one sample"):
        attribute(digits_mlp, torch.randn(0, 1, 8, 8), 0)
    broken = copy.deepcopy(digits_mlp)
    with torch.no_grad():
        broken.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="Attribution needs finite weights: fc1.weight"):
        attribute(broken, torch.randn(2, 1, 8, 8), 0)
    # NaN had a rank each: an all-NaN map correlated 1.0 with 0..3 (scipy's spearmanr gives nan)
    assert math.isnan(rank_correlation(torch.full((4,), float("nan")), torch.arange(4.0)))
    assert math.isnan(rank_correlation(torch.tensor([0.0, 1.0, float("nan"), 3.0]), torch.arange(4.0)))
    assert rank_correlation(torch.tensor([0.0, 1.0, float("inf"), 3.0]), torch.arange(4.0)) == pytest.approx(0.8)
