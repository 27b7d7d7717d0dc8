"""Median server-side time of a full rerun of the Prune page after a slider change (AppTest).

    python benchmarks/app_latency.py [--model lenet300] [--repeats 30]

Each measured rerun moves the sparsity slider to a new value (so the page
re-prunes the session's dense copy, re-evaluates, rebuilds the table and the
heatmap preview) and times ``AppTest.run()``: the whole script, server side,
without the browser. Values cycle through levels not seen before in the run
(cold prune cache) unless ``--warm``. Target: <= 150 ms for LeNet-300-100.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet300")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warm", action="store_true", help="revisit cached slider positions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = args.model
    at.run()
    at.switch_page("views/2_prune.py").run()
    assert not at.exception, [e.value for e in at.exception]
    levels = [(7 * i) % 97 + 1 for i in range(args.repeats + 3)] if not args.warm else [10, 50, 90] * (args.repeats // 3 + 2)
    for v in levels[:3]:  # warm-up: imports, first figure
        at.slider(key="prune_sparsity").set_value(v).run()
    times = []
    for v in levels[3 : 3 + args.repeats]:
        at.slider(key="prune_sparsity").set_value(v)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
    result = {
        "model": args.model,
        "repeats": len(times),
        "cache": "warm" if args.warm else "cold",
        "median_ms": round(1000 * statistics.median(times), 1),
        "p90_ms": round(1000 * sorted(times)[int(0.9 * (len(times) - 1))], 1),
        "min_ms": round(1000 * min(times), 1),
        "target_ms": 150,
    }
    print(json.dumps(result) if args.json else
          f"{result['model']}: Prune rerun after a slider change, median {result['median_ms']} ms "
          f"(p90 {result['p90_ms']} ms, min {result['min_ms']} ms, {result['repeats']} reruns, {result['cache']} cache); "
          f"target <= 150 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
