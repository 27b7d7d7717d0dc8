"""How fast the Playground trains and redraws: seconds per epoch, seconds and bytes per redraw.

The page trains one epoch per ``training.train`` call and redraws its four figures (network, decision boundary,
unit maps, losses) at most every ``app_state.playground.REDRAW_SECONDS``. This measures both costs on the page's
default network and on the largest one it allows, the contenders interleaved round by round, medians reported.

    python benchmarks/playground_live.py [--rounds 7] [--no-doc]

Writes its table into docs/playground.md (block ``playground_live``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_block import write_block  # noqa: E402

from sparsity_viz.devices import configure_threads  # noqa: E402
from sparsity_viz.figures.playground import playground_figures  # noqa: E402
from sparsity_viz.playground import MAX_LAYERS, MAX_UNITS, PlaygroundSpec, start, train_epochs  # noqa: E402

CONTENDERS = {
    "default (2-6-6-2, dense)": PlaygroundSpec(),
    f"largest (2-{'-'.join([str(MAX_UNITS)] * MAX_LAYERS)}-2, SET 50 %)": PlaygroundSpec(
        hidden=(MAX_UNITS,) * MAX_LAYERS, dynamics="set", sparsity=0.5),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-doc", action="store_true", help="print only")
    args = ap.parse_args()
    threads = configure_threads()
    runs = {name: train_epochs(start(spec), 2) for name, spec in CONTENDERS.items()}  # warm up
    for run in runs.values():
        playground_figures(run)
    epoch_s = {n: [] for n in runs}
    draw_s = {n: [] for n in runs}
    size = {n: [] for n in runs}
    for _ in range(args.rounds):
        for name in runs:  # interleaved: every round measures every contender
            t = time.perf_counter()
            runs[name] = train_epochs(runs[name], 1)
            epoch_s[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            payload = sum(len(f.to_json()) for f in playground_figures(runs[name]).values() if f is not None)
            draw_s[name].append(time.perf_counter() - t)
            size[name].append(payload)
    rows = ["| network | points (train / test) | ms per epoch | ms per redraw (4 figures + JSON) | KB per redraw |",
            "|---|---|---:|---:|---:|"]
    for name, run in runs.items():
        ds = run.dataset
        rows.append(f"| {name} | {len(ds.y_train)} / {len(ds.y_test)} | {1000 * statistics.median(epoch_s[name]):.0f} "
                    f"| {1000 * statistics.median(draw_s[name]):.0f} | {statistics.median(size[name]) / 1024:.0f} |")
    table = "\n".join(rows) + (f"\n\nMedians of {args.rounds} interleaved rounds, {threads} torch thread(s); "
                               f"`python benchmarks/playground_live.py --rounds {args.rounds}`.")
    print(table)
    if not args.no_doc:
        write_block(ROOT / "docs" / "playground.md", "playground_live", table)


if __name__ == "__main__":
    main()
