"""Active parameters and FLOPs against hand counts; the timing helper runs and is interleaved."""

import torch

from sparsity_viz.models import count_parameters
from sparsity_viz.moe import (MoEMLP, active_parameters, compare_compute, dense_counterpart, flops_per_input,
                              mlp_flops_per_input, time_forwards, total_parameters)


def _moe(top_k):
    torch.manual_seed(0)
    return MoEMLP(10, (6,), 3, num_experts=4, top_k=top_k)


def test_parameter_counts_by_hand():
    expert = 10 * 6 + 6 + 6 * 3 + 3  # 87
    router = 10 * 4 + 4  # 44
    for k in (1, 2):
        model = _moe(k)
        assert active_parameters(model) == router + k * expert
        assert total_parameters(model) == router + 4 * expert == count_parameters(model)


def test_flops_by_hand():
    model = _moe(2)
    assert flops_per_input(model) == 2 * (10 * 4 + 2 * (10 * 6 + 6 * 3))
    assert flops_per_input(model, all_experts=True) == 2 * (10 * 4 + 4 * (10 * 6 + 6 * 3))
    dense = dense_counterpart(model)
    assert dense.hidden == (12,)
    assert mlp_flops_per_input(dense) == 2 * (10 * 12 + 12 * 3)


def test_time_forwards_rounds_and_order():
    calls = []
    timings = time_forwards({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, batch=1, rounds=3,
                            burst=2, warmup=1)
    assert [t.name for t in timings] == ["a", "b"] and all(t.rounds == 3 and t.median_ms >= 0 for t in timings)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3  # warm-up, then interleaved bursts


def test_compare_compute_rows():
    model = _moe(1).train()
    rows = compare_compute(model, batches=(1, 4), rounds=3)
    assert model.training  # mode restored
    assert len(rows) == 6 and {r["batch"] for r in rows} == {1, 4}
    routed = [r for r in rows if r["path"].startswith("routed")]
    assert all(r["vs_routed"] == 1.0 for r in routed)


def test_measuring_and_building_leave_the_process_random_stream_alone():
    """The Experts page's Measure (``compare_compute`` -> ``dense_counterpart``) called ``torch.manual_seed``: every
    session's thread shares that stream, so one student's click reset another's dropout masks (an audit)."""
    from sparsity_viz.moe import MoESpec

    model = _moe(2)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a, b = dense_counterpart(model, seed=7), dense_counterpart(model, seed=7)
    spec = MoESpec("toy", "moons", 10, (6,), 3, 4, 2, "a toy")
    built, again = spec.build(seed=5), spec.build(seed=5)
    assert torch.equal(torch.rand(4), expected)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # still seeded
    assert all(torch.equal(p, q) for p, q in zip(built.parameters(), again.parameters()))
