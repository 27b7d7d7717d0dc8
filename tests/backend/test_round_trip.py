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


def test_the_size_note_says_why_a_file_is_not_smaller():
    """At 2 % the Export page said the layout of "a model this small" outweighs the zeros, where every tensor was
    stored dense and only the layout was extra (an audit)."""
    from sparsity_viz.backend import save_sparse
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.pruning import prune

    model, _ = load_sample("lenet300")
    for sparsity in (0.0, 0.02):
        saved = save_sparse(prune(model, "global_magnitude", sparsity).model)
        assert saved.nbytes >= saved.dense_nbytes and set(saved.report()["encoding"]) == {"dense"}
        assert saved.size_note().startswith("Every tensor is stored dense")
    assert save_sparse(prune(model, "global_magnitude", 0.9).model).size_note() == ""
    tiny, _ = load_sample("moons_mlp")
    saved = save_sparse(prune(tiny, "global_magnitude", 0.9).model)
    assert saved.nbytes >= saved.dense_nbytes and "layout (names, shapes, indices) costs more" in saved.size_note()
