"""The native evaluation pass (``label_stats``) against torch's cross-entropy and argmax."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sparsity_viz import training
from sparsity_viz.backend import kernels

pytestmark = pytest.mark.skipif(not kernels.available(), reason="native kernel not built (no C++ compiler)")


def _torch_stats(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    return float(F.cross_entropy(logits, y, reduction="sum")), int((logits.argmax(1) == y).sum())


@pytest.mark.parametrize("n, c, scale", [(1000, 10, 1.0), (7, 3, 1e3), (33, 2, 1e-3), (5, 1, 1.0), (0, 10, 1.0),
                                         (9, 16, 30.0), (9, 17, 1.0), (20, 37, 5.0)])
def test_label_stats_equals_torch(n, c, scale):
    gen = torch.Generator().manual_seed(n + c)
    logits, y = scale * torch.randn(n, c, generator=gen), torch.randint(0, c, (n,), generator=gen)
    loss, hits = kernels.load().label_stats(logits, y)
    want_loss, want_hits = _torch_stats(logits, y)
    assert hits == want_hits
    assert loss == pytest.approx(want_loss, rel=1e-5, abs=1e-4)
    assert training.label_stats(logits, y) == (pytest.approx(want_loss, rel=1e-5, abs=1e-4), want_hits)


def test_label_stats_ties_nan_and_inf_like_torch():
    logits = torch.tensor([[1.0, 3.0, 3.0],  # tie: the first maximum
                           [float("nan"), 5.0, 1.0],  # NaN counts as the maximum
                           [0.0, float("-inf"), 2.0],  # a -inf logit off the label: finite loss
                           [float("inf"), 0.0, 0.0]])  # an infinite maximum: NaN loss
    y = torch.tensor([1, 0, 2, 0])
    native = kernels.load()
    for rows in ([0], [1], [2], [3]):
        loss, hits = native.label_stats(logits[rows], y[rows])
        want_loss, want_hits = _torch_stats(logits[rows], y[rows])
        assert hits == want_hits, rows
        assert (math.isnan(loss) and math.isnan(want_loss)) or loss == pytest.approx(want_loss, rel=1e-6), rows


def test_label_stats_rejects_bad_labels_and_shapes():
    native = kernels.load()
    for labels in ([0, 3], [-1, 0]):  # IndexError, as F.cross_entropy raises for a label out of range
        with pytest.raises(IndexError, match="out of range"):
            native.label_stats(torch.zeros(2, 3), torch.tensor(labels))
        with pytest.raises(IndexError):
            F.cross_entropy(torch.zeros(2, 3), torch.tensor(labels))
    with pytest.raises(RuntimeError, match="one per row"):
        native.label_stats(torch.zeros(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(RuntimeError, match="float32"):
        native.label_stats(torch.zeros(2, 3, dtype=torch.float64), torch.tensor([0, 1]))


def test_evaluate_uses_the_same_numbers_with_and_without_the_kernel(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(300, 3, 4, generator=gen), torch.randint(0, 5, (300,), generator=gen)
    native = training.evaluate(model, x, y, batch_size=128, device="cpu")
    monkeypatch.setattr(kernels, "loaded", lambda: None)
    plain = training.evaluate(model, x, y, batch_size=128, device="cpu")
    assert native.accuracy == plain.accuracy
    assert native.loss == pytest.approx(plain.loss, rel=1e-6)
