"""The app's one cache mechanism: bounded by entries and by estimated bytes, least recently used out first."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from app_state.cache import SPECS, BoundedCache, nbytes, session_cache, shared_cache
from sparsity_viz.models import build_model


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")
def test_nbytes_of_tensors_models_frames_and_containers():
    t = torch.zeros(1000)
    assert nbytes(t) == 4000
    assert nbytes(torch.zeros(10, dtype=torch.bool)) == 10
    model = build_model("lenet300", seed=0)
    params = sum(p.numel() * 4 for p in model.parameters())
    assert params <= nbytes(model) < params * 1.1
    frame = pd.DataFrame({"a": range(1000)})
    assert nbytes(frame) >= 8000
    assert 4000 <= nbytes((t, [t, {"x": t}])) < 5000  # the same tensor counts once
    csr = torch.eye(100).to_sparse_csr()
    assert 0 < nbytes(csr) < nbytes(torch.eye(100))


def test_a_sessions_evaluation_model_does_not_count_the_shared_anchor_store():
    from sparsity_viz.backend import anchored, kernels, live
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.data import load_dataset

    if not kernels.available():
        pytest.skip("native kernel not built (no C++ compiler): " + (kernels.notice() or "no reason given"))
    dense, x = load_sample("lenet300")[0], load_dataset("mnist5k").x_test
    step = live.live_step(dense, "global_magnitude", 0.8)
    fast = live.evaluation_model(step.model)
    fast(x), fast(x)  # the second look builds an anchor in the process-wide store
    assert anchored.STORE.nbytes > 1 << 20
    model_bytes = nbytes(step.model)
    # the pruned copy and this level's operators; not the store or the pruner's sorted layers (shared by all)
    assert nbytes((step.model, fast)) < 2 * model_bytes


def test_bounded_by_entries_least_recently_used_first():
    cache = BoundedCache(max_entries=3, max_bytes=1 << 20)
    for k in "abc":
        cache[k] = k
    cache["a"]  # touch a: b is now the least recently used
    cache["d"] = "d"
    assert set(cache) == {"a", "c", "d"} and len(cache) == 3


def test_bounded_by_bytes():
    cache = BoundedCache(max_entries=100, max_bytes=10_000)
    for i in range(5):
        cache[i] = torch.zeros(1000)  # 4,000 bytes each: two fit
    assert set(cache) == {3, 4} and cache.nbytes == 8000 <= cache.max_bytes
    cache["huge"] = torch.zeros(10_000)  # larger than the whole bound: returned by the caller, never kept
    assert "huge" not in cache and set(cache) == {3, 4}


def test_get_or_compute_computes_once():
    cache = BoundedCache(max_entries=4, max_bytes=1 << 20)
    calls = []
    assert cache.get_or_compute("k", lambda: calls.append(1) or 7) == 7
    assert cache.get_or_compute("k", lambda: calls.append(1) or 8) == 7
    assert calls == [1]


def test_every_cache_is_bounded_and_shared_ones_are_not_per_session():
    assert all(s.max_entries > 0 and s.max_bytes > 0 for s in SPECS.values())
    shared = next(s for s in SPECS.values() if s.shared)
    own = next(s for s in SPECS.values() if not s.shared)
    with pytest.raises(ValueError):
        session_cache(shared)
    with pytest.raises(ValueError):
        shared_cache(own)


def test_safe_under_threads():
    """Sessions share the shared caches from parallel script threads."""
    import threading

    cache = BoundedCache(max_entries=50, max_bytes=1 << 20)

    def work(i):
        for j in range(2000):
            cache[(i, j % 80)] = torch.zeros(10)
            cache.get((i, (j * 7) % 80))
            cache.get_or_compute(j % 5, lambda: 1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    errors = []
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        threading.excepthook = threading.__excepthook__
    assert not errors and len(cache) == 50
