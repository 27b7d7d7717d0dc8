"""The live slider step on LeNet-300-100: prune to a new level + evaluate the 1,000 MNIST-5k test digits.

    python benchmarks/live_path.py [--rounds 21] [--no-write]

One torch thread (the app's setting), the bundled trained LeNet-300-100 and the MNIST-5k test split
(1,000 digits). Contenders, timed interleaved at each level (every round runs each once, in an
order shuffled per round; medians of ``--rounds`` rounds):

    live     backend.live.live_step (the ranking of the model and strategy sorted once, cut at the
             level, the pruned copy) + evaluate(live.evaluation_model(copy)): the first layer's
             pre-activations from the nearest anchor level plus a small CSR correction
             (backend.anchored), the later layers on the native CSR kernel read off the sorted
             layers or dense
    before   what a step cost before: prune() (scores + a full stable argsort every step)
             + evaluate(live.fast_plan(...) or the pruned model): compile_model(policy="heuristic")
    dense    evaluating the 1,000 digits with the dense model alone (no pruning): a reference

The "every slider position" rows move the live path through all positions 1..99 % once each, in a
shuffled order (each a level not seen before), and take the median: the first pass right after the
sort, then a second pass (both with every anchor built: the second move builds them all). "first move"
is the first step after the sort (the test set not seen yet: evaluated without anchors), "second move"
the next one (it builds every anchor of the test set, once).
"anchor memory" is what the shared anchor store holds after the strategy; "where a warm step's time
goes" splits the warm step into its parts (thread CPU ms, medians over every position, 3 passes;
the parts are timed one by one, so they add up to about the second pass). Each time is wall clock and,
in brackets, the CPU time of the timing thread (``time.thread_time``; torch runs on that one thread):
on a shared machine the second leaves out the time spent waiting for a core. "sort once" is the first call
for a model and strategy (``live.live_pruner``: scores + the one sort + the per-row sorted layers).
Before timing, each live step's masks and weights are checked equal to ``prune``'s and its accuracy
equal to the pruned model's. The table goes to docs/backend.md ("Live slider step").
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doc_block import cpu_line, publish, rounds_args  # noqa: E402 (this script's folder is on sys.path)
from sparsity_viz.backend import anchored, kernels, live  # noqa: E402
from sparsity_viz.backend.bench import round_order  # noqa: E402
from sparsity_viz.checkpoints import load_sample  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.pruning import prune  # noqa: E402
from sparsity_viz.training import evaluate, label_stats  # noqa: E402

DOC = ROOT / "docs" / "backend.md"
TABLE = "live-path-table"
STRATEGIES = ("global_magnitude", "magnitude")
LEVELS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
TARGET_MS = 2.0


def _live(dense, strategy, x, y):
    def step(s):
        st = live.live_step(dense, strategy, s)
        return evaluate(live.evaluation_model(st.model), x, y, device="cpu").accuracy
    return step


def _before(dense, strategy, x, y):
    def step(s):
        pruned = prune(dense, strategy, s).model
        return evaluate(live.fast_plan(pruned) or pruned, x, y, device="cpu").accuracy
    return step


def _check(dense, strategy, x, y, s) -> None:
    st, ref = live.live_step(dense, strategy, s), prune(dense, strategy, s)
    assert all(torch.equal(st.masks[n], m) for n, m in ref.masks.items()), (strategy, s, "masks")
    assert all(torch.equal(a, b) for a, b in zip(st.model.state_dict().values(), ref.model.state_dict().values()))
    got = evaluate(live.evaluation_model(st.model), x, y, device="cpu").accuracy
    want = evaluate(ref.model, x, y, device="cpu").accuracy
    assert got == want, (strategy, s, got, want)
    with torch.no_grad():  # the anchored logits (the test set seen by now) against the pruned model's
        torch.testing.assert_close(live.evaluation_model(st.model)(x), ref.model(x), rtol=1e-4, atol=1e-4)


def _timed(fn) -> tuple[float, float]:
    """(wall, CPU time of this thread) of ``fn()`` in seconds; CPU time leaves out waiting for a busy core."""
    w0, c0 = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - w0, time.thread_time() - c0


def _rounds(fns: dict, level: float, rounds: int) -> dict[str, float]:
    """Median wall ms (and ``<name>_cpu`` thread-CPU ms) of each contender at ``level``, order shuffled per round."""
    names, wall, cpu = list(fns), {k: [] for k in fns}, {k: [] for k in fns}
    for k in names:
        fns[k](level)  # warm-up
    for r in range(rounds):
        for k in round_order(names, r):
            w, c = _timed(lambda: fns[k](level))
            wall[k].append(w)
            cpu[k].append(c)
    return {**{k: 1e3 * statistics.median(v) for k, v in wall.items()},
            **{f"{k}_cpu": 1e3 * statistics.median(v) for k, v in cpu.items()}}


def _breakdown(dense, strategy, x, y, passes: int = 3) -> dict[str, float]:
    """Median thread-CPU ms of each part of a warm live step over every slider position (anchors built)."""
    from sparsity_viz.backend.ops import run_chain

    positions = list(range(1, 100))
    random.Random(1).shuffle(positions)
    parts: dict[str, list[float]] = {k: [] for k in ("live_step (masks + pruned copy)", "evaluation_model (later "
                                                     "layers' operators)", "first layer (anchor + correction + ReLU)",
                                                     "later layers", "loss + argmax (evaluate)")}
    clock = time.thread_time
    for _ in range(passes):
        for p in positions:
            t0 = clock()
            st = live.live_step(dense, strategy, p / 100)
            t1 = clock()
            fast = live.evaluation_model(st.model)
            t2 = clock()
            with torch.no_grad():
                h = fast.anchors.preact(fast.cut, x, relu=True)  # (300, N)
                t3 = clock()
                logits = run_chain(fast.rest, h).t().contiguous()  # (N, 10)
            t4 = clock()
            label_stats(logits, y)  # what evaluate() does with them
            t5 = clock()
            for k, t in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                parts[k].append(1e3 * t)
    return {k: statistics.median(v) for k, v in parts.items()}


def measure(rounds: int) -> tuple[list[dict], dict]:
    torch.set_num_threads(1)
    if not kernels.available():
        print(f"note: native kernel unavailable ({kernels.notice()}): the live path evaluates densely")
    dense = load_sample("lenet300")[0].eval()
    ds = load_dataset("mnist5k")
    x, y = ds.x_test, ds.y_test  # (1000, 1, 28, 28), (1000,)
    rows, extra = [], {}
    for strategy in STRATEGIES:
        anchored.STORE.clear()
        t0 = time.perf_counter()
        live.live_pruner(dense, strategy)
        extra[f"sort once ({strategy})"] = (1e3 * (time.perf_counter() - t0), float("nan"))
        step = _live(dense, strategy, x, y)
        for i, name in enumerate(("first move", "second move")):
            extra[f"{name} after the sort ({strategy})"] = tuple(1e3 * t for t in _timed(lambda: step(0.37 + i / 10)))
        positions = list(range(1, 100))
        random.Random(0).shuffle(positions)
        for name in ("first pass", "second pass"):
            times = [_timed(lambda: step(p / 100)) for p in positions]
            extra[f"every slider position 1..99, {name} ({strategy})"] = (
                1e3 * statistics.median(t[0] for t in times), 1e3 * statistics.median(t[1] for t in times))
            if name == "first pass":
                extra[f"every slider position 1..99, first pass, slowest step ({strategy})"] = (
                    1e3 * max(t[0] for t in times), 1e3 * max(t[1] for t in times))
        extra[f"anchor memory ({strategy}, MB)"] = (anchored.STORE.nbytes / 2**20, float("nan"))
        if kernels.available():
            for part, ms in _breakdown(dense, strategy, x, y).items():
                extra[f"where a warm step's time goes ({strategy}): {part}, CPU"] = (ms, float("nan"))
        for s in LEVELS:
            _check(dense, strategy, x, y, s)
        fns = {"live": _live(dense, strategy, x, y), "before": _before(dense, strategy, x, y),
               "dense": lambda s: evaluate(dense, x, y, device="cpu").accuracy}
        for s in LEVELS:
            st = live.live_step(dense, strategy, s)
            fast = live.evaluation_model(st.model)
            formats = "/".join(getattr(fast, "formats", lambda: ["module"])())
            med = _rounds(fns, s, rounds)
            rows.append({"strategy": strategy, "level": s, **med, "formats": formats})
    return rows, extra


def markdown(rows: list[dict], extra: dict, rounds: int) -> str:
    lines = ["| strategy | level | live step, ms (CPU ms) | before, ms (CPU ms) | speed-up | dense eval alone, ms "
             "(CPU ms) | live / dense eval (CPU) | live layers |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {100 * r['level']:.0f} % | **{r['live']:.2f}** ({r['live_cpu']:.2f}) "
                     f"| {r['before']:.2f} ({r['before_cpu']:.2f}) | {r['before'] / r['live']:.1f}× "
                     f"| {r['dense']:.2f} ({r['dense_cpu']:.2f}) | {r['live_cpu'] / r['dense_cpu']:.2f} "
                     f"| {r['formats']} |")
    lines.append("")
    for k, (w, c) in extra.items():
        cpu = f" ({c:.2f} CPU ms)" if c == c else ""
        target = f" (target ≤ {TARGET_MS:.0f} ms median)" if "every" in k and "slowest" not in k else ""
        unit = "" if "MB" in k else " ms"
        lines.append(f"- {k}: **{w:.2f}{unit}**{cpu}{target}")
    lines.append("")
    lines.append(f"`python benchmarks/live_path.py --rounds {rounds}`: medians of {rounds} interleaved rounds, "
                 f"1 torch thread, torch {torch.__version__}, {cpu_line()}, native kernel "
                 f"{'on' if kernels.available() else 'off'}. Live steps checked equal to `prune` (masks, weights, "
                 "accuracy) and the anchored logits close to the pruned model's before timing.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = rounds_args(__doc__.splitlines()[0], argv)
    rows, extra = measure(args.rounds)
    publish(DOC, TABLE, markdown(rows, extra, args.rounds), write=not args.no_write)


if __name__ == "__main__":
    main()
