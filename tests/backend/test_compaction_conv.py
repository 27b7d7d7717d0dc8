"""compact_conv_chain: structured pruning (whole filters / neurons) makes LeNet-5's layers physically smaller
and keeps its function (assert_close against the pruned model), and compile_model uses it."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_viz.backend import compile_model
from sparsity_viz.backend import compiled as compiled_module
from sparsity_viz.backend.compaction import compact_conv_chain
from sparsity_viz.models import LeNet5, build_model
from sparsity_viz.pruning import prune


def _x(n=12, seed=0):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def structured():
    return prune(build_model("lenet5", seed=0), "structured", 0.6).model.eval()


def test_structured_lenet5_shrinks_by_the_pruned_filters(structured):
    x = _x()
    c = compact_conv_chain(structured, x)
    assert c.problem is None
    live = {n: int((getattr(structured, n).weight != 0).flatten(1).any(1).sum()) for n in ("conv1", "conv2", "fc1")}
    assert live == {"conv1": 8, "conv2": 20, "fc1": 200}  # round(0.4 * rows) rows left per hidden layer
    assert c.shapes == {"conv1": ((20, 1, 5, 5), (8, 1, 5, 5)), "conv2": ((50, 20, 5, 5), (20, 8, 5, 5)),
                        "fc1": ((500, 800), (200, 320)), "fc2": ((10, 500), (10, 200))}
    assert c.model.conv2.in_channels == 8 and c.model.fc1.in_features == 20 * 16
    with torch.no_grad():
        torch.testing.assert_close(c.model(x), structured(x), rtol=1e-5, atol=1e-5)
    assert structured.conv1.weight.shape == (20, 1, 5, 5)  # the input model is untouched


def test_dead_filters_with_a_bias_are_folded_into_the_next_layer():
    torch.manual_seed(0)
    model = LeNet5().eval()
    with torch.no_grad():
        model.conv1.weight[[1, 4]] = 0  # constant planes relu(b) read by conv2: folded into its bias
        model.conv1.bias[1] = 0.3
        model.conv1.bias[4] = -0.2  # relu(-0.2) = 0: nothing to fold
        model.conv2.weight[:, 7] = 0  # channel 7 of conv1 is never read
        model.conv2.weight[3] = 0  # conv2 filter 3: 16 constant features of fc1
        model.conv2.bias[3] = 0.5
    x = _x(seed=1)
    c = compact_conv_chain(model, x)
    assert c.shapes["conv1"] == ((20, 1, 5, 5), (17, 1, 5, 5))
    assert c.shapes["conv2"] == ((50, 20, 5, 5), (49, 17, 5, 5))
    assert c.shapes["fc1"] == ((500, 800), (500, 784))
    with torch.no_grad():
        torch.testing.assert_close(c.model(x), model(x), rtol=1e-5, atol=1e-5)


class Padded(nn.Module):
    """conv2 pads: a nonzero constant plane of a dead conv1 filter cannot be folded (the border sees zeros)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3)
        self.conv2 = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 6 * 6, 4)

    def forward(self, x):
        return self.fc(F.relu(self.conv2(F.relu(self.conv1(x)))).flatten(1))


class HardCodedView(LeNet5):
    def forward(self, x):
        x = self.pool(self.act(self.conv1(x)))
        x = self.pool(self.act(self.conv2(x)))
        return self.fc2(self.act(self.fc1(x.view(-1, 800))))


def test_what_cannot_be_compacted_comes_back_unchanged():
    torch.manual_seed(0)
    padded = Padded().eval()
    with torch.no_grad():
        padded.conv1.weight[0] = 0
        padded.conv1.bias[0] = 1.0
    c = compact_conv_chain(padded, torch.randn(3, 1, 8, 8))
    assert c.model is padded and c.shapes == {}
    hard = HardCodedView().eval()
    with torch.no_grad():
        hard.conv2.weight[:5] = 0
    c = compact_conv_chain(hard, _x())
    assert c.model is hard and "computes something else" in c.problem


def test_compile_model_compacts_and_equals_dense(structured, monkeypatch):
    # the whole-call guard's clock says the compiled model is faster (as it is, with ~5x fewer multiplies), so the
    # compaction is what runs whatever this machine's load did to one timing
    monkeypatch.setattr(compiled_module, "_time_models", lambda fns, x, rounds=None: [1.0] + [0.5] * (len(fns) - 1))
    x = _x(40, seed=2)
    compiled = compile_model(structured, batch_size=32, device="cpu", calibration=x, repeats=3)
    plans = {p.name: p for p in compiled.plans}
    assert plans["conv2"].shape == (50, 20, 5, 5) and plans["conv2"].compiled_shape == (20, 8, 5, 5)
    assert any("compacted" in n for n in compiled.notices)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), structured(x), rtol=1e-4, atol=1e-5)
    plain = compile_model(structured, batch_size=32, device="cpu", calibration=x, compact=False,
                          formats=("dense",))
    assert all(p.shape == p.compiled_shape for p in plain.plans)
