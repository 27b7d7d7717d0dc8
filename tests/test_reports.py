"""sparsity_report checked element by element on hand-built masks (dead units themselves: test_connectivity)."""

from __future__ import annotations

import torch

from sparsity_viz.masks import full_masks
from sparsity_viz.models import MLP
from sparsity_viz.pruning import prune
from sparsity_viz.reports import csr_bytes, sparsity_report


def _mlp():
    torch.manual_seed(0)
    return MLP(4, (3,), 2)


def test_report_counts_exactly():
    model = _mlp()
    masks = full_masks(model)
    masks["fc1.weight"][0, :] = False  # hidden unit 0 has no input
    masks["fc1.weight"][2, 1] = False
    masks["fc2.weight"][:, 1] = False  # hidden unit 1 has no output
    report = sparsity_report(model, masks).set_index("layer")
    assert report.loc["fc1", "parameters"] == 12
    assert report.loc["fc1", "zeros"] == 5
    assert report.loc["fc1", "nonzeros"] == 7
    assert report.loc["fc1", "sparsity"] == 5 / 12
    assert report.loc["fc2", "zeros"] == 2
    assert report.loc["total", "zeros"] == 7
    assert report.loc["total", "sparsity"] == 7 / 18
    assert report.loc["fc1", "dense_bytes"] == 48
    assert report.loc["fc1", "csr_bytes"] == 7 * 8 + 4 * 4
    assert report.loc["fc1", "dead_outputs"] == 1  # row 0 empty
    assert report.loc["fc2", "dead_inputs"] == 1  # column 1 empty
    assert report.loc["fc1", "dead_neurons"] == 2  # hidden 0 (no input) and 1 (no output)
    assert report.loc["fc2", "dead_neurons"] == 0


def test_report_reads_zeros_from_weights_without_masks():
    model = _mlp()
    with torch.no_grad():
        model.fc2.weight[0, 0] = 0.0
    report = sparsity_report(model).set_index("layer")
    assert report.loc["fc2", "zeros"] == 1


def test_report_at_0_and_100_percent(lenet300):
    for s in (0.0, 1.0):
        report = sparsity_report(*reversed(prune(lenet300, "global_magnitude", s)[::-1])).set_index("layer")
        assert report.loc["total", "sparsity"] == s
    empty = sparsity_report(*prune(lenet300, "magnitude", 1.0)).set_index("layer")
    assert empty.loc["fc1", "csr_bytes"] == csr_bytes(300, 0)
    assert empty.loc["fc3", "dead_neurons"] == 10
