"""Routing against hand-computable cases: top-k of the logits, renormalised gates, the balance loss formula."""

import pytest
import torch

from sparsity_viz.moe import balance_loss, route


def test_top1_is_argmax_and_gate_is_the_raw_probability():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, -1.0], [0.0, 0.0, 5.0]])
    r = route(logits, top_k=1)
    assert r.experts[:, 0].tolist() == logits.argmax(1).tolist()
    torch.testing.assert_close(r.gates[:, 0], logits.softmax(1).max(1).values)  # Switch: not renormalised
    assert route(logits, 1, renormalize=True).gates.eq(1.0).all()


def test_top2_is_topk_of_logits_with_renormalised_gates():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 6, generator=g)
    r = route(logits, top_k=2)
    assert r.experts.tolist() == logits.topk(2, dim=1).indices.tolist()
    torch.testing.assert_close(r.gates.sum(1), torch.ones(50))
    p = logits.softmax(1)
    chosen = p.gather(1, r.experts)
    torch.testing.assert_close(r.gates, chosen / chosen.sum(1, keepdim=True))
    assert r.load.tolist() == torch.bincount(r.experts.reshape(-1), minlength=6).tolist()
    assert int(r.load.sum()) == 100


def test_dense_gates_zero_off_the_topk():
    r = route(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), top_k=2)
    dense = r.dense_gates()
    assert dense[0, 0] == 0 and dense[0, 3] == 0
    torch.testing.assert_close(dense.sum(1), torch.ones(1))


def test_balance_loss_uniform_is_one_and_collapse_is_n():
    n = 4
    uniform_probs = torch.full((8, n), 1 / n)
    round_robin = torch.arange(8).remainder(n)[:, None]  # f_i = 1/4 each
    torch.testing.assert_close(balance_loss(uniform_probs, round_robin), torch.tensor(1.0))
    certain = torch.zeros(8, n)
    certain[:, 2] = 1.0
    torch.testing.assert_close(balance_loss(certain, torch.full((8, 1), 2)), torch.tensor(float(n)))


def test_balance_loss_hand_computed():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    experts = torch.tensor([[0], [1]])  # f = (1/2, 1/2, 0); P = (0.3, 0.45, 0.25)
    torch.testing.assert_close(balance_loss(probs, experts), torch.tensor(3 * (0.5 * 0.3 + 0.5 * 0.45)))
    torch.testing.assert_close(route(probs.log(), 1).balance_loss, balance_loss(probs, experts))


def test_bad_top_k():
    with pytest.raises(ValueError, match="top_k"):
        route(torch.zeros(2, 3), top_k=4)


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_the_balance_loss_is_at_most_n_over_k_as_the_texts_say(top_k):
    """The page and the CLI said "4 = one expert" for the top-2 moe_mnist, whose loss cannot pass 2.0 (an audit)."""
    from sparsity_viz.moe.routing import balance_loss, route

    n = 4
    certain = torch.full((8, n), -30.0)
    certain[:, 0] = 30.0  # every input's router certain of expert 0
    routing = route(certain, top_k)
    assert float(balance_loss(routing.probs, routing.experts)) == pytest.approx(n / top_k, rel=1e-4)
    uniform = route(torch.zeros(8, n), top_k)
    assert float(balance_loss(uniform.probs, torch.arange(8 * top_k).reshape(8, top_k) % n)) == pytest.approx(1.0)
