"""Sparse checkpoint round trip: bit-identical means every bit, signed zeros included."""

from __future__ import annotations

import torch

from sparsity_viz.backend.round_trip import bit_equal, sparse_round_trip, state_dicts_bit_equal
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.pruning import prune


def test_bit_equal_sees_signed_zeros_dtypes_and_shapes():
    a = torch.tensor([0.0, 1.0])
    assert bit_equal(a, a.clone())
    assert not bit_equal(a, torch.tensor([-0.0, 1.0]))
    assert torch.equal(a, torch.tensor([-0.0, 1.0]))  # what a value comparison would have missed
    assert not bit_equal(a, a.double())
    assert not bit_equal(a, a.view(2, 1))
    assert not bit_equal(a.double(), torch.tensor([-0.0, 1.0], dtype=torch.float64))
    assert bit_equal(torch.tensor([1, 2]), torch.tensor([1, 2]))
    assert state_dicts_bit_equal({"w": a}, {"w": a.clone()})
    assert not state_dicts_bit_equal({"w": a}, {"w": a, "b": a})


def test_pruned_model_round_trips_bit_exact():
    model, _ = load_sample("digits_mlp")
    pruned = prune(model, "magnitude", 0.9)
    trip = sparse_round_trip(pruned.model, pruned.masks)
    assert trip.ok
    assert trip.saved.nbytes < trip.saved.dense_nbytes
