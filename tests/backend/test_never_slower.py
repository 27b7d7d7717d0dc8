"""Issue 11 (items 1, 4): multi-threaded native kernels on torch's OpenMP pool, the one-call MLP
path with reused buffers, the thread guard, and a compiled call never slower than dense.

No timed assertions: the "never slower" test checks the dispatcher's own interleaved whole-call
measurements (``CompiledModel.timing``) for every shape and batch of the issue's table.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import threading
import types

import pytest
import torch

from sparsity_viz.backend import compile_model, kernels, thread_guard
from sparsity_viz.backend import compiled as compiled_module
from sparsity_viz.backend import dispatch
from sparsity_viz.backend.ops import NativeCSROp, NativeDenseOp
from sparsity_viz.backend.thread_guard import ThreadGuard
from sparsity_viz.devices import torch_threads
from sparsity_viz.models import MLP, LeNet5
from sparsity_viz.pruning import prune

needs_native = pytest.mark.skipif(not kernels.available(), reason="native kernels unavailable (no compiler)")


def _pruned(factory, sparsity=0.9, seed=0, strategy="global_magnitude"):
    torch.manual_seed(seed)
    return prune(factory().eval(), strategy, sparsity).model.eval()


def _sparse(shape, sparsity=0.9, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    return w * (torch.rand(shape, generator=g) >= sparsity)


@needs_native
def test_one_openmp_runtime_and_two_threads_equal_dense():
    # In a fresh interpreter: this test process may hold other OpenMP runtimes already (scikit-learn ships its own).
    code = ("from sparsity_viz.backend import kernels; assert kernels.load() is not None; "
            "print('\\n'.join(kernels.openmp_runtimes()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    runtimes = out.stdout.split()
    assert len(runtimes) == 1 and "torch" in runtimes[0], runtimes  # torch's libgomp, reused
    w, b = _sparse((300, 784)), torch.randn(300)
    with torch_threads(2):
        for batch in (1, 5, 33, 256):  # rows split (300 rows) at every batch
            x = torch.randn(784, batch)
            for op in (NativeCSROp(w, b, True, 2, 64), NativeCSROp(w, b, True, 2, 32), NativeDenseOp(w, b, True, 2)):
                torch.testing.assert_close(op.forward(x), torch.relu(w @ x + b[:, None]), rtol=1e-4, atol=1e-4)
        w10 = _sparse((10, 100))  # few rows: sample tiles split instead
        for batch in (31, 64, 1000):
            x = torch.randn(100, batch)
            torch.testing.assert_close(NativeCSROp(w10, None, False, 2).forward(x), w10 @ x, rtol=1e-4, atol=1e-4)


@needs_native
def test_chain_reuses_buffers_but_never_its_result():
    w1, w2 = _sparse((64, 50)), _sparse((10, 64), 0.5)
    ops = [NativeCSROp(w1, None, True), NativeCSROp(w2, None, False)]
    chain = ops[0].make_chain([op.layer() for op in ops], 50)
    keep = torch.tensor([3 * i for i in range(50)])  # the chain reads 50 of 150 input columns
    chain.set_keep(keep)

    def ref(x):
        return torch.relu(x[:, keep] @ w1.t()) @ w2.t()

    results = []
    for batch in (1, 7, 64, 256, 64, 1):  # batch sizes change: buffers are re-made, then reused
        x = torch.randn(batch, 150)
        y = chain.forward(x, True, True)  # (B, 10)
        torch.testing.assert_close(y, ref(x), rtol=1e-4, atol=1e-4)
        results.append((y, y.clone()))
    for y, saved in results:  # a later call never overwrote an earlier result
        assert torch.equal(y, saved)
    with pytest.raises(RuntimeError, match="input features"):
        chain.forward(torch.randn(4, 100), True, True)  # column 147 does not exist


@needs_native
@pytest.mark.parametrize("order", ["sorted", "shuffled", "repeated"])
@pytest.mark.parametrize("threads", [1, 2])
def test_kept_input_columns_in_one_pass_at_every_batch(order, threads):
    """Batch-major input with dead columns: gathered and transposed in one pass (8 x 8 blocks and their
    remainders in samples and columns, one or two threads), equal to the kept columns chosen first;
    a column kept twice takes the other route (index_select first) with the same result."""
    g = torch.Generator().manual_seed(3)
    keep = torch.randperm(203, generator=g)[:131]  # 131 of 203 columns: neither a multiple of 8
    keep = {"sorted": keep.sort().values, "shuffled": keep,
            "repeated": torch.cat([keep[:-2], keep[:2]])}[order]
    w = _sparse((40, 131), 0.5)
    op = NativeCSROp(w, None, False)
    chain = op.make_chain([op.layer()], 131)
    chain.set_keep(keep)
    with torch_threads(threads):
        # chunked from 65 samples (csrc CHUNK), in one piece below
        for batch in (1, 2, 7, 8, 9, 63, 64, 65, 200, 256, 513, 1100):
            x = torch.randn(batch, 203, generator=g)
            want = x[:, keep] @ w.t()
            for n in (threads, -1):  # the call's thread count, or the layer's own
                torch.testing.assert_close(chain.forward(x, True, True, n), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(chain.forward(x.t().contiguous(), False, True, threads), want,
                                       rtol=1e-5, atol=1e-5)  # feature-major input: rows selected
            torch.testing.assert_close(chain.forward(x.t().contiguous(), False, False, threads), want.t(),
                                       rtol=1e-5, atol=1e-5)  # and feature-major output
            torch.testing.assert_close(chain.forward(x[:, :keep.max() + 1], True, True, threads), want,
                                       rtol=1e-5, atol=1e-5)  # the columns after the last kept one may be absent


@needs_native
@pytest.mark.parametrize("width", [2003, 1001, 785])
@pytest.mark.parametrize("threads", [1, 2])
def test_kept_columns_of_a_wide_input_split_over_threads(width, threads):
    """A wide batch-major input (kept columns in runs and gaps, as a first layer's live pixels are) through a layer
    on ``threads`` threads: unchunked batches are large enough to split the gather over threads by column ranges,
    and every kept column must be written whatever the split (at::parallel_for cut 2,003 columns at 1,002, inside
    an 8-column block whose tail then kept the reused buffer's stale values). Whole dead blocks are skipped."""
    g = torch.Generator().manual_seed(width)
    live = torch.rand(width, generator=g) < 0.8
    live[100:180] = False  # ten whole dead blocks
    live[-5:] = True  # a kept run up to the last (partial) block
    keep = live.nonzero().flatten()[torch.randperm(int(live.sum()), generator=g)]
    w = _sparse((30, keep.numel()), 0.9)
    op = NativeCSROp(w, None, False, threads=threads)
    chain = op.make_chain([op.layer()], keep.numel())
    chain.set_keep(keep)
    with torch_threads(threads):
        for batch in (8, 13, 21, 33, 64, 65, 130):
            for _ in range(2):  # a second input: stale values from the first would show
                x = torch.randn(batch, width, generator=g)
                torch.testing.assert_close(chain.forward(x, True, True, threads), x[:, keep] @ w.t(),
                                           rtol=1e-5, atol=1e-5)


@needs_native
def test_set_keep_copies_its_columns_and_needs_no_memory_for_the_largest_index():
    """The chain keeps its own copy of the kept columns (a caller's later edit changes nothing), and a kept index of
    2**40 costs memory in the number of kept columns, not in the index (a dense map of 2**40 entries raised
    MemoryError); an input narrower than the largest kept index is refused."""
    w = _sparse((6, 3), 0.0)
    op = NativeCSROp(w, None, False)
    chain = op.make_chain([op.layer()], 3)
    keep = torch.tensor([4, 0, 2])
    chain.set_keep(keep)
    keep[0] = 1  # the caller's tensor, edited after the call
    x = torch.randn(5, 6)
    torch.testing.assert_close(chain.forward(x, True, True, 1), x[:, [4, 0, 2]] @ w.t(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chain.forward(x.t().contiguous(), False, True, 1), x[:, [4, 0, 2]] @ w.t(),
                               rtol=1e-5, atol=1e-5)
    chain.set_keep(torch.tensor([2**40, 0, 2]))
    with pytest.raises(RuntimeError, match="reads feature 1099511627776"):
        chain.forward(x, True, True, 1)
    for bad in (x[0], x[None]):  # 1-D and 3-D
        with pytest.raises(RuntimeError, match=f"X must be 2-D, got {bad.dim()}-D"):
            chain.forward(bad, True, True, 1)


@needs_native
@pytest.mark.parametrize("threads", [1, 2])
def test_chunked_chain_equals_the_layer_by_layer_chain(threads):
    """A three-layer chain (CSR with panels, dense, CSR) at batches that split into chunks, with a ragged last
    chunk, on strided feature-major input too: equal to torch, and to the same chain run in one piece."""
    from sparsity_viz.backend.compiled import CHUNKED_FROM

    assert CHUNKED_FROM == kernels.load().CHUNK + 1
    g = torch.Generator().manual_seed(5)
    w1, w2, w3 = _sparse((300, 784), 0.9, seed=1), torch.randn(100, 300, generator=g) / 17, _sparse((10, 100), 0.5)
    b1, b2, b3 = (torch.randn(n, generator=g) for n in (300, 100, 10))
    ops = [NativeCSROp(w1, b1, True, threads=threads), NativeDenseOp(w2, b2, True, threads=threads),
           NativeCSROp(w3, b3, False, threads=threads)]
    chain = ops[0].make_chain([op.layer() for op in ops], 784)
    with torch_threads(threads):
        for batch in (64, 65, 130, 257, 1000):
            x = torch.randn(batch, 784, generator=g)
            want = torch.relu(torch.relu(x @ w1.t() + b1) @ w2.t() + b2) @ w3.t() + b3
            got = chain.forward(x, True, True, threads)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            wide = torch.randn(784, batch + 24, generator=g)[:, 5:batch + 5]  # feature-major, row stride > batch
            torch.testing.assert_close(chain.forward(wide, False, False, threads),
                                       (torch.relu(torch.relu(wide.t() @ w1.t() + b1) @ w2.t() + b2) @ w3.t() + b3).t(),
                                       rtol=1e-4, atol=1e-4)
            pieces = torch.cat([chain.forward(x[i:i + 64], True, True, threads) for i in range(0, batch, 64)])
            torch.testing.assert_close(got, pieces, rtol=1e-4, atol=1e-4)  # (a ragged chunk sums in another order)


@needs_native
def test_chain_called_from_threads_at_once():
    w = _sparse((200, 300))
    chain = NativeCSROp(w, None, True).chain()
    xs = [torch.randn(300, 128) for _ in range(4)]
    out = [None] * 4

    def work(i):
        for _ in range(20):
            out[i] = chain.forward(xs[i], False)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, y in zip(xs, out):
        torch.testing.assert_close(y, torch.relu(w @ x), rtol=1e-4, atol=1e-4)


class _Clock:
    """A fake perf_counter: each call of the guarded function advances it by the time it is given."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _costed_calls(monkeypatch, cost: dict[int, float]):
    """(fn, used): ``fn(n)`` records ``n`` in ``used`` and takes ``cost[n]`` seconds on the guard's fake clock."""
    clock = _Clock()
    monkeypatch.setattr(thread_guard, "time", types.SimpleNamespace(perf_counter=clock))  # this module only
    used = []

    def fn(n):
        used.append(n)
        clock.now += cost[n]
        return n

    return fn, used


def test_thread_guard_follows_the_measured_times(monkeypatch):
    cost = {1: 1.0, 2: 0.5}  # idle: 2 threads twice as fast
    fn, used = _costed_calls(monkeypatch, cost)
    guard = ThreadGuard(2)
    with torch_threads(2):
        for _ in range(40):
            guard.run(fn, batch=256)
        # one first probe (no 2-thread times yet: all its calls), one after PROBE_FIRST calls (ended by its
        # first call, twice the 2-thread median), then none (the interval doubled)
        assert guard.choice(256) == 2 and used.count(1) == thread_guard.PROBE_CALLS + 1, used
        cost[2] = 30.0  # busy: the other core is taken, the barrier waits
        used.clear()
        for _ in range(200):
            guard.run(fn, batch=256)
        assert guard.choice(256) == 1
        # 3 slow calls until the median of 5 flips, then probes after 16, 32, 64 and 128 calls (backing off)
        assert used.count(2) <= 3 + 4 * thread_guard.PROBE_CALLS, used.count(2)
        assert guard.summary()[256]["threads"] == 1
        cost[2] = 0.5  # idle again: a probe sees it and 2 threads come back
        for _ in range(2 * thread_guard.PROBE_MAX):
            guard.run(fn, batch=256)
        assert guard.choice(256) == 2
    with torch_threads(1):  # one torch thread: nothing to choose, always 1
        used.clear()
        guard.run(fn, batch=256)
        assert used == [1]


def test_the_guard_releases_the_openmp_workers_before_a_one_thread_call_after_a_parallel_one(monkeypatch):
    """Only then, and untimed: a worker left spinning would slow that call when the other core is busy."""
    cost = {1: 1.0, 2: 0.5}
    fn, used = _costed_calls(monkeypatch, cost)
    released = []

    def release():  # takes 100 s on the fake clock: it must not count as the 1-thread call's time
        released.append(len(used))
        thread_guard.time.perf_counter.now += 100.0

    guard = ThreadGuard(2, release=release)
    with torch_threads(2):
        for _ in range(300):
            guard.run(fn, batch=256)
            if len(used) == 150:
                cost[2] = 30.0  # the other core gets busy: 1 thread wins, 2 threads are only probed
    after_parallel = [i for i in range(1, len(used)) if used[i] == 1 and used[i - 1] > 1]
    assert after_parallel and released == after_parallel  # before each such call, never otherwise
    assert guard.summary()[256]["median_us"][1] == pytest.approx(1e6 * cost[1])
    quiet = ThreadGuard(2, release=None)  # no release at all
    with torch_threads(2):
        for _ in range(50):
            quiet.run(fn, batch=256)


def test_a_probe_of_more_threads_does_not_time_the_workers_restart(monkeypatch):
    """Found by an audit: after released workers the probe's first 2-thread call paid their restart (~50 us), alone
    it ended the probe, and after a busy spell the guard stayed on 1 thread for good."""
    cost = {1: 50e-6, 2: 30e-6}
    fn, used = _costed_calls(monkeypatch, cost)
    restart = {"pending": False}

    def restarting(n):  # the first parallel region after a release starts the workers again
        out = fn(n)
        if n > 1 and restart["pending"]:
            thread_guard.time.perf_counter.now += 50e-6
            restart["pending"] = False
        return out

    guard = ThreadGuard(2, release=lambda: restart.update(pending=True))
    with torch_threads(2):
        for _ in range(200):
            guard.run(restarting, batch=8)
        assert guard.choice(8) == 2
        cost[2] = 1e-3  # a busy spell: 2 threads slow
        for _ in range(40):
            guard.run(restarting, batch=8)
        assert guard.choice(8) == 1
        cost[2] = 30e-6  # idle again
        used.clear()
        for _ in range(2000):
            guard.run(restarting, batch=8)
        assert guard.choice(8) == 2 and used.count(2) > 1900


@needs_native
def test_releasing_the_openmp_workers_keeps_torch_and_the_kernels_working():
    from sparsity_viz.backend import kernels

    kernels.load()
    a = torch.randn(256, 256)
    with torch_threads(2):
        before = a @ a
        tasks = len(os.listdir("/proc/self/task"))
        assert kernels.release_openmp_threads()  # torch's libgomp has omp_pause_resource_all (OpenMP 5)
        assert len(os.listdir("/proc/self/task")) <= tasks  # its workers gone, not more
        torch.testing.assert_close(a @ a, before)  # the next parallel region starts them again


def test_one_lucky_call_does_not_flip_the_thread_guard(monkeypatch):
    """A probe decides on the median of its calls: one fast outlier among them does not switch the count."""
    clock = _Clock()
    monkeypatch.setattr(thread_guard, "time", types.SimpleNamespace(perf_counter=clock))  # this module only
    used = []

    def fn(n):
        probe_call = n == 2 and (not used or used[-1] != 2)  # the first call of a run of 2-thread calls
        used.append(n)
        clock.now += 1.0 if n == 1 else (0.1 if probe_call else 1.5)  # 2 threads slower, but for one lucky call
        return n

    guard = ThreadGuard(2)
    settled = False
    with torch_threads(2):
        for _ in range(300):
            guard.run(fn, batch=8)
            settled = settled or guard.choice(8) == 1
            if settled:  # once on 1 thread, the probes' lucky first calls never bring 2 back
                assert guard.choice(8) == 1, used
    # 1 thread but for probes (each an untimed warm-up of the released workers, then its timed calls)
    assert settled and used[-50:].count(2) <= thread_guard.PROBE_CALLS + 1


@pytest.mark.parametrize("probe_cost, calls", [(1.6, 1), (1.4, thread_guard.PROBE_CALLS)])
def test_a_probe_clearly_slower_on_its_first_call_ends_there(monkeypatch, probe_cost, calls):
    """A probe's first call above ABANDON x the current median ends it; a closer one runs all its calls."""
    assert thread_guard.ABANDON == 1.5  # the two costs sit on either side of it
    cost = {1: 0.5, 2: 1.0}
    fn, used = _costed_calls(monkeypatch, cost)
    guard = ThreadGuard(2)
    with torch_threads(2):
        for _ in range(thread_guard.PROBE_CALLS + 2):  # the first probe (of 1 thread) settles on 1 thread
            guard.run(fn, batch=64)
        assert guard.choice(64) == 1
        cost[2] = 0.5 * probe_cost  # the next probe's 2-thread calls: probe_cost x the 1-thread median (0.5)
        used.clear()
        for _ in range(thread_guard.PROBE_FIRST + thread_guard.PROBE_CALLS + 1):
            guard.run(fn, batch=64)
        assert used.count(2) == calls + 1, used  # + the untimed warm-up of the workers released on 1 thread
        assert guard.choice(64) == 1  # 0.8 and 0.7 are both slower than 0.5: no switch either way
        assert guard.summary()[64]["median_us"][2] == pytest.approx(1e6 * cost[2])


@needs_native
def test_the_guards_one_thread_calls_run_the_one_thread_plan(monkeypatch):
    """A layer chosen on 2 threads also keeps its format's fastest 1-thread variant; the guard's 1-thread calls use it."""
    w, b = _sparse((300, 784)), torch.randn(300)

    def fake_time(op, fmt, batch, device, repeats=15, example=None):  # 2 threads fastest, tile 32 best on 1 thread
        threads, tile = getattr(op, "threads", 1), getattr(op, "tile", 64)
        return {("csr-native", 2): 1.0, ("csr-native", 1): 3.0 if tile == 64 else 2.0}.get((fmt, threads), 9.0)

    monkeypatch.setattr(dispatch, "measured_time", fake_time)
    with torch_threads(2):
        choice = dispatch.choose(w, b, True, batch=256, formats=("csr-native", "dense-native"))
        assert choice.format == "csr-native" and choice.op.threads == 2
        assert choice.single is not None and choice.single.threads == 1 and choice.single.tile == 32
        # one encoding of the weights for both: switching thread counts reads weights already in cache
        assert choice.single.csr is choice.op.csr and choice.single.panels()[2] is choice.op.panels()[2]
        out = torch.nn.Linear(300, 10)
        ops = [choice.op, NativeCSROp(out.weight.detach(), out.bias.detach(), False, threads=2)]
        singles = [choice.single, NativeCSROp(out.weight.detach(), out.bias.detach(), False, threads=1)]
        compiled = compiled_module.CompiledModel([], device=torch.device("cpu"), batch_size=256, policy="measure",
                                                 ops=ops, single_ops=singles)
        assert compiled.thread_guard is not None and compiled.single_ops is singles
        x = torch.randn(256, 784, generator=torch.Generator().manual_seed(1))
        want = out(torch.relu(x @ w.t() + b))
        calls = []
        for n in (1, 2):  # force the guard's choice: both plans give the same logits
            monkeypatch.setattr(compiled.thread_guard, "run", lambda fn, batch, n=n: calls.append(n) or fn(n))
            with torch.no_grad():
                torch.testing.assert_close(compiled(x), want, rtol=1e-4, atol=1e-4)
        assert calls == [1, 2]
        assert compiled.one_call(single=True) is not compiled.one_call()
        monkeypatch.undo()  # the guard's own run again (a patched one does not pickle)
        clone = pickle.loads(pickle.dumps(compiled))  # the native chains are rebuilt on demand, both of them
        with torch.no_grad():
            torch.testing.assert_close(clone(x), want, rtol=1e-4, atol=1e-4)


@needs_native
def test_the_guard_chooses_the_chunked_chains_threads_even_for_one_thread_layers(monkeypatch):
    """Layers timed fastest on one thread still get a guard on two torch threads: above 64 samples the chain runs
    in chunks on the call's thread count, which the guard chooses; below, it has nothing to choose and is skipped."""
    def fake_time(op, fmt, batch, device, repeats=15, example=None):  # one thread always faster per layer
        return 1e-6 * getattr(op, "threads", 1) if fmt == "csr-native" else 1.0

    monkeypatch.setattr(dispatch, "measured_time", fake_time)
    model = _pruned(_lenet300)
    with torch_threads(2):
        compiled = compile_model(model, batch_size=256, device="cpu", formats=("csr-native",))
        assert all(op.threads == 1 for op in compiled.ops) and compiled.thread_guard is not None
        assert compiled.threads_at(8) == 1 and compiled.threads_at(compiled_module.CHUNKED_FROM) == 2
        calls = []
        monkeypatch.setattr(compiled.thread_guard, "run", lambda fn, batch: calls.append(batch) or fn(2))
        for batch in (8, 256):
            x = torch.randn(batch, 784)
            with torch.no_grad():
                torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
        assert calls == [256]
    with torch_threads(1):
        assert compile_model(model, batch_size=256, device="cpu", formats=("csr-native",)).thread_guard is None


@needs_native
def test_the_one_thread_plan_takes_the_fastest_native_format(monkeypatch):
    """The 1-thread plan is what a 1-thread compile would run: another native format when it is faster on one
    thread than the chosen format's 1-thread variant, never torch's dense (the plan runs as one native chain)."""
    w, b = _sparse((300, 784)), torch.randn(300)

    def fake_time(op, fmt, batch, device, repeats=15, example=None):
        threads = getattr(op, "threads", 1)
        return {("csr-native", 2): 1.0, ("csr-native", 1): 3.0, ("dense-native", 1): 2.5, ("dense", 1): 2.0}.get(
            (fmt, threads), 9.0)

    monkeypatch.setattr(dispatch, "measured_time", fake_time)
    with torch_threads(2):
        choice = dispatch.choose(w, b, True, batch=256, formats=("csr-native", "dense-native"))
    assert choice.format == "csr-native" and choice.op.threads == 2
    assert isinstance(choice.single, NativeDenseOp) and choice.single.threads == 1


@needs_native
def test_a_layer_too_short_to_split_stays_on_one_thread(monkeypatch):
    """Below MIN_PARALLEL_US on one thread, a 2-thread variant is not chosen even when it times 2x faster; above it,
    it is (and both are listed in the timings)."""
    w, b = _sparse((300, 784)), torch.randn(300)

    for one_us, want in ((0.5 * dispatch.MIN_PARALLEL_US, 1), (2 * dispatch.MIN_PARALLEL_US, 2)):
        def fake_time(op, fmt, batch, device, repeats=15, example=None, one_us=one_us):
            if fmt != "csr-native":
                return 1.0  # dense and the rest: far slower
            return one_us * 1e-6 / getattr(op, "threads", 1)  # 2 threads: half the time

        monkeypatch.setattr(dispatch, "measured_time", fake_time)
        with torch_threads(2):
            choice = dispatch.choose(w, b, True, batch=256, formats=("csr-native", "dense-native"))
        assert choice.format == "csr-native" and choice.op.threads == want, (one_us, choice.times_us)
        assert any("[t2," in label for label in choice.times_us) and any("[t1," in label for label in choice.times_us)


def _lenet300():
    return MLP(784, (300, 100), 10)


def _wide():
    return MLP(784, (2048, 2048), 10)


# every shape, batch and thread count of issue 11's table (LeNet-5 at batch 32 stands for "any batch >= 32")
TABLE = [
    ("lenet300", _lenet300, 256, 1),
    ("lenet300", _lenet300, 256, 2),
    ("lenet300", _lenet300, 1024, 2),
    ("784-2048-2048-10", _wide, 256, 2),
    ("lenet5", LeNet5, 32, 1),
    ("100x300 layer", lambda: MLP(300, (), 100), 1, 1),
    ("100x300 layer", lambda: MLP(300, (), 100), 8, 1),
]


@needs_native
@pytest.mark.parametrize("name,factory,batch,threads", TABLE, ids=[f"{t[0]}-b{t[2]}-t{t[3]}" for t in TABLE])
def test_dispatch_choice_never_slower_than_dense(name, factory, batch, threads, monkeypatch):
    monkeypatch.setattr(compiled_module, "GUARD_ROUNDS", 5)  # CI time; the rule is the same
    if factory is _wide:  # CI time: torch CSR / BSR / N:M on 2048x2048 take seconds to time and never win
        monkeypatch.setattr(dispatch, "default_formats", lambda device, batch: ("dense", "csr-native"))
    # layer-wise for the wide MLP: global magnitude on its random init would empty layers 2-3
    model = _pruned(factory, strategy="magnitude" if factory is _wide else "global_magnitude")
    x = torch.randn(batch, 1, 28, 28) if isinstance(model, LeNet5) else torch.randn(batch, model.in_features)
    with torch_threads(threads):
        compiled = compile_model(model, batch_size=batch, device="cpu", repeats=5)
        t = compiled.timing
        assert t is not None and t["batch"] == batch and t["threads"] == threads
        assert t["chosen_us"] <= 1.05 * t["dense_us"], t
        if t["chosen"] == "original module":  # sparse lost: the original module runs, nothing else
            assert compiled.module is not None and all(p.format == "dense" for p in compiled.plans)
        else:
            assert t["compiled_us"] < t["dense_us"]
        with torch.no_grad():
            want = model(x)
        torch.testing.assert_close(compiled(x), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("factory,no_native", [(_lenet300, False), (_lenet300, True), (LeNet5, True)],
                         ids=["mlp", "mlp-no-native", "lenet5-no-native"])
def test_every_layer_dense_runs_the_original_module(factory, no_native, monkeypatch):
    """Every layer measured fastest dense: the original module runs (no wrapper around dense ops), and the
    whole call is still timed; an MLP's one-call native chain still competes (it loses here by a fake clock).
    (Without native kernels, so that LeNet-5's convs, timed by their own clock, have no sparse candidate.)"""
    monkeypatch.setattr(compiled_module, "GUARD_ROUNDS", 3)
    monkeypatch.setattr(dispatch, "measured_time", lambda op, fmt, *a, **k: 1e-6 if fmt == "dense" else 1.0)
    timed = []

    def fake_models(fns, x, rounds=None):  # the module first, then what competes with it; all slower
        timed.append(len(fns))
        return [1.0] + [2.0] * (len(fns) - 1)

    monkeypatch.setattr(compiled_module, "_time_models", fake_models)
    model = _pruned(factory)
    compiled = compile_model(model, batch_size=8, device="cpu", repeats=3, force_fallback=no_native, compact=False)
    assert compiled.module is not None and all(p.format == "dense" for p in compiled.plans)
    assert compiled.timing["chosen"] == "original module" and compiled.timing["chosen_us"] == compiled.timing["dense_us"]
    native_mlp = factory is _lenet300 and not no_native and kernels.available()
    assert timed == [2 if native_mlp else 1]  # the module, plus the one-call chain for an MLP
    assert (compiled.timing["compiled_us"] is not None) == native_mlp
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


@needs_native
def test_one_call_path_on_images_and_copies():
    model = _pruned(_lenet300)
    with torch.no_grad():
        model.fc1.weight[:, :28] = 0  # the first image row feeds nothing (like MNIST's border pixels)
    compiled = compile_model(model, batch_size=8, device="cpu", formats=("csr-native",))
    assert compiled.input_keep.numel() == 784 - 28
    assert compiled.one_call() is not None
    x = torch.randn(8, 1, 28, 28)  # image-shaped input, flattened by the one-call path
    with torch.no_grad():
        want = model(x)
    torch.testing.assert_close(compiled(x), want, rtol=1e-4, atol=1e-4)
    for clone in (copy.deepcopy(compiled), pickle.loads(pickle.dumps(compiled))):  # the C++ chain is rebuilt
        torch.testing.assert_close(clone(x), want, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="takes float32 inputs"):  # as the original raises (no silent cast)
        compiled(x.double())


def test_guard_busy_benchmark_runs_another_guard_file(benchmark_script, tmp_path):
    """benchmarks/guard_busy.py --other FILE: the file's own ThreadGuard (not the library's) is what it times."""
    from pathlib import Path

    bench = benchmark_script("guard_busy")
    assert bench.guard_class(None) is None
    variant = tmp_path / "always_one.py"  # a guard that always runs one thread
    variant.write_text("class ThreadGuard:\n    def __init__(self, threads):\n        self.threads = threads\n"
                       "    def run(self, fn, batch):\n        return fn(1)\n")
    cls = bench.guard_class(variant)
    assert cls is not ThreadGuard and cls(2).run(lambda n: n, 256) == 1
    assert bench.guard_class(Path(thread_guard.__file__))(2).counts() == ThreadGuard(2).counts()
