"""Models: the registry builds every entry, forward shapes, prunable parameters, seeding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsity_viz import MODELS, build_model, load_dataset, prunable_layers, prunable_parameters
from sparsity_viz.models import MLP, LeNet5, build_architecture, count_parameters, describe_architecture, get_spec

# name: (input shape of one sample, classes, prunable weight names in forward order, weight shapes)
EXPECTED = {
    "moons_mlp": ((2,), 2, [(8, 2), (8, 8), (2, 8)]),
    "circles_mlp": ((2,), 2, [(8, 2), (8, 8), (2, 8)]),
    "xor_mlp": ((2,), 2, [(8, 2), (8, 8), (2, 8)]),
    "spiral_mlp": ((2,), 2, [(16, 2), (16, 16), (2, 16)]),
    "digits_mlp": ((1, 8, 8), 10, [(32, 64), (10, 32)]),
    "lenet300": ((1, 28, 28), 10, [(300, 784), (100, 300), (10, 100)]),
    "lenet5": ((1, 28, 28), 10, [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]),
}


def _names(model_name: str) -> list[str]:
    if model_name == "lenet5":
        return ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
    return [f"fc{i + 1}.weight" for i in range(len(EXPECTED[model_name][2]))]


def test_registry_is_what_we_test():
    assert set(MODELS) == set(EXPECTED)


@pytest.mark.parametrize("name", list(MODELS))
def test_registry_builds_every_model_with_forward_shape(name):
    shape, classes, _ = EXPECTED[name]
    model = build_model(name, seed=0)
    assert isinstance(model, nn.Module)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, classes)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_model_fits_its_registered_dataset(name):
    spec = get_spec(name)
    d = load_dataset(spec.dataset)
    model = build_model(name, seed=0)
    with torch.no_grad():
        out = model(d.x_test[:4])
    assert out.shape == (4, d.num_classes)


@pytest.mark.parametrize("name", list(MODELS))
def test_prunable_parameters_names_order_and_shapes(name):
    model = build_model(name, seed=0)
    params = prunable_parameters(model)
    assert list(params) == _names(name)
    assert [tuple(p.shape) for p in params.values()] == EXPECTED[name][2]
    # they are the model's own Parameters, not copies
    own = dict(model.named_parameters())
    for n, p in params.items():
        assert p is own[n]
    layers = prunable_layers(model)
    assert [f"{n}.weight" for n, _ in layers] == list(params)


def test_prunable_parameters_with_bias_interleaves_weights_and_biases(lenet300):
    params = prunable_parameters(lenet300, include_bias=True)
    assert list(params) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]


@pytest.mark.parametrize("name", list(MODELS))
def test_seeded_build_is_reproducible_and_seed_sensitive(name):
    a, b, c = build_model(name, seed=1), build_model(name, seed=1), build_model(name, seed=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_seeded_build_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model("moons_mlp", seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_lenet_sizes_match_the_papers():
    assert count_parameters(build_model("lenet300", seed=0)) == 266_610
    assert count_parameters(build_model("lenet5", seed=0)) == 431_080
    assert describe_architecture(build_model("lenet300", seed=0)) == "784-300-100-10 MLP (266,610 params)"


def test_build_architecture_from_json_args():
    m = build_architecture("mlp", {"in_features": 2, "hidden": [4, 4], "num_classes": 2, "activation": "tanh"})
    assert isinstance(m, MLP) and m.hidden == (4, 4) and isinstance(m.act, nn.Tanh)
    assert isinstance(build_architecture("lenet5", {"num_classes": 10, "channels": [2, 3], "hidden": 8}), LeNet5)
    with pytest.raises(ValueError, match="mlp"):
        build_architecture("resnet", {})


def test_unknown_model_raises_with_choices():
    with pytest.raises(ValueError, match="lenet300"):
        build_model("vgg16")
