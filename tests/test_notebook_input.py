"""What a notebook user plausibly passes by mistake gets a message naming it, or just works.

Found by an audit of the public API: numpy arrays, a float64 model, float labels, a state dict for a model,
a model and dataset that do not fit, an empty training split, ``method=`` by keyword, a conv model SynFlow
cannot guess the input size of.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import sparsity_viz as sv
from sparsity_viz.activations import activation_sparsity
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import Dataset, load_dataset
from sparsity_viz.masks import apply_masks, sparsity
from sparsity_viz.models import build_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_mlp():
    return load_sample("digits_mlp")[0]


def test_a_float64_model_evaluates_and_trains_on_the_float32_data(digits, digits_mlp):
    want = sv.evaluate_dataset(digits_mlp, digits)
    got = sv.evaluate_dataset(digits_mlp.double(), digits)
    assert got.count == want.count and got.accuracy == want.accuracy
    result = sv.train(digits_mlp.double(), digits, sv.TrainConfig(epochs=1))
    assert result.model.fc1.weight.dtype == torch.float64 and len(result.history) == 1


def test_numpy_arrays_are_taken_as_tensors(digits, digits_mlp):
    x, y = digits.x_test, digits.y_test
    assert sv.evaluate(digits_mlp, x.numpy(), y.numpy()) == sv.evaluate(digits_mlp, x, y)
    report, ref = activation_sparsity(digits_mlp, x.numpy(), y.numpy()), activation_sparsity(digits_mlp, x, y)
    assert [layer.zero_fraction for layer in report.layers] == [layer.zero_fraction for layer in ref.layers]
    torch.testing.assert_close(sv.attribute(digits_mlp, x[:3].numpy(), 2), sv.attribute(digits_mlp, x[:3], 2))
    arrays = Dataset("np", x.numpy().astype(np.float64), y.numpy().astype(np.int32), x.numpy(), y.numpy(),
                     digits.input_shape, digits.class_names, "image")
    assert arrays.x_train.dtype == torch.float32 and arrays.y_train.dtype == torch.int64
    assert len(sv.train(digits_mlp, arrays, sv.TrainConfig(epochs=1)).history) == 1


@pytest.mark.parametrize("labels, match", [
    (lambda y: y.float(), r"got torch.float32 of shape \(359,\)"),
    (lambda y: y[:, None], r"got torch.int64 of shape \(359, 1\)"),
    (lambda y: y > 4, r"got torch.bool"),
])
def test_labels_that_are_not_whole_numbers_are_refused(digits, digits_mlp, labels, match):
    with pytest.raises(ValueError, match=r"labels must be one whole-number class per sample .*" + match):
        sv.evaluate(digits_mlp, digits.x_test, labels(digits.y_test))
    with pytest.raises(ValueError, match=r"y_test must be one whole-number class label per sample .*" + match):
        Dataset("bad", digits.x_train, digits.y_train, digits.x_test, labels(digits.y_test), digits.input_shape,
                digits.class_names, "image")


def test_a_dataset_with_one_label_short_is_refused(digits):
    with pytest.raises(ValueError, match=r"x_train holds 1438 samples but y_train 10 labels"):
        Dataset("short", digits.x_train, digits.y_train[:10], digits.x_test, digits.y_test, digits.input_shape,
                digits.class_names, "image")


@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_a_model_that_does_not_take_the_data_says_so(digits, name):
    with pytest.raises(ValueError, match=r"the model does not take inputs of shape \(1, 8, 8\) \(one sample\): .*"
                                         r"Is this the dataset the model was built for\?"):
        sv.evaluate_dataset(load_sample(name)[0], digits)
    with pytest.raises(ValueError, match=r"does not take inputs of shape"):
        sv.train(load_sample(name)[0], digits, sv.TrainConfig(epochs=1))


def test_an_empty_training_split_is_refused(digits, digits_mlp):
    empty = Dataset("empty", digits.x_train[:0], digits.y_train[:0], digits.x_test, digits.y_test,
                    digits.input_shape, digits.class_names, "image")
    with pytest.raises(ValueError, match="empty has no training samples to train on"):
        sv.train(digits_mlp, empty, sv.TrainConfig(epochs=1))
    assert sv.train(digits_mlp, empty, sv.TrainConfig(epochs=0)).history == []  # no epoch asked: nothing to refuse


def test_a_state_dict_is_not_a_model(digits_mlp):
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got OrderedDict; load a state dict"):
        sv.prune(digits_mlp.state_dict(), "magnitude", 0.9)


def test_a_numpy_mask_is_named_as_such(digits_mlp):
    masks = {"fc1.weight": np.ones(tuple(digits_mlp.fc1.weight.shape), dtype=bool)}
    with pytest.raises(ValueError, match=r"Mask 'fc1.weight' must be a torch bool tensor, got ndarray of bool"):
        apply_masks(digits_mlp, masks)


def test_method_by_keyword_is_pointed_to_its_place(digits, digits_mlp):
    x = digits.x_test[:2]
    with pytest.raises(ValueError, match=r"pass the attribution method positionally, after the target: "
                                         r"attribute\(model, inputs, target, 'integrated_gradients'\)"):
        sv.attribute(digits_mlp, x, target=0, method="integrated_gradients")
    ig = sv.attribute(digits_mlp, x, 0, "integrated_gradients", method="riemann_trapezoid")  # Captum's own method=
    assert ig.shape == x.shape


class _Conv32(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 5)
        self.act = nn.ReLU()
        self.fc = nn.Linear(8 * 28 * 28, 10)

    def forward(self, x):  # (B, 3, 32, 32)
        return self.fc(self.act(self.conv(x)).flatten(1))


def test_synflow_on_a_conv_model_of_other_image_sizes_asks_for_a_batch():
    torch.manual_seed(0)
    model = _Conv32()
    with pytest.raises(ValueError, match=r"SynFlow guessed 28x28 images for _Conv32, and it does not take them "
                                         r".*pass batch=\(inputs, labels\)"):
        sv.prune(model, "synflow", 0.9)
    batch = (torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    assert sparsity(sv.prune(model, "synflow", 0.9, batch=batch).masks) == pytest.approx(0.9, abs=1e-3)
    assert sparsity(sv.prune(build_model("lenet5", seed=0), "synflow", 0.5).masks) == pytest.approx(0.5, abs=1e-3)
