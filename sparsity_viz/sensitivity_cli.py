"""The ``sensitivity`` CLI command, wired into ``python -m sparsity_viz`` by ``cli.py``.

``sensitivity --model lenet300 --levels 0.5,0.7,0.9,0.95,0.99 [--strategy magnitude] [--seeds 0,1,2]
[--csv out.csv] [--target 0.9] [--json]``: prunes one layer at a time to each level (the rest
dense, ``sensitivity.sensitivity_scan``) and prints the test accuracy per layer and level; with
``--target`` also the per-layer targets the sensitivity-guided strategy picks for that overall
sparsity (``pruning.sensitivity_guided.suggest_targets``). Bad input raises ``ValueError``
before anything is loaded; ``cli.main`` prints it as one ``error:`` line and exits with status 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .atomic_write import write_atomically


def add_sensitivity_parser(subparsers) -> None:
    """Register ``sensitivity`` on the CLI's subparsers (sets ``func``)."""
    from .cli_args import add_common_args, fraction_arg, fractions_arg, names_arg, output_arg, seeds_arg
    from .sensitivity import DEFAULT_LEVELS

    p = subparsers.add_parser("sensitivity", help="per-layer sensitivity: prune one layer at a time to each level "
                                                  "(the rest dense); accuracy per layer and level")
    add_common_args(p)
    p.add_argument("--levels", type=fractions_arg, default=list(DEFAULT_LEVELS),
                   help="comma-separated sparsity levels in [0, 1]")
    p.add_argument("--strategy", default="magnitude", help="a one-shot strategy with a per-layer scope")
    p.add_argument("--seeds", type=seeds_arg, default=[0], help="comma-separated seeds of the strategy")
    p.add_argument("--layers", type=names_arg, default=None, help="comma-separated layer names (default: all)")
    p.add_argument("--target", type=fraction_arg, default=None,
                   help="also print the per-layer targets the sensitivity-guided strategy picks for this sparsity "
                        "of the scanned layers (every layer unless --layers)")
    p.add_argument("--csv", type=output_arg, default=None, help="write the scan (one row per layer, level, seed) to this CSV file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_sensitivity)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _records(frame) -> list[dict]:
    from .quantize_cli import _records as records

    return records(frame)


def run_sensitivity(args) -> int:
    from .cli_shared import ProgressLine, load_bundled
    from .experiments import sweep_csv
    from .models import get_spec
    from .pruning.sensitivity_guided import suggest_targets
    from .sensitivity import check_levels, check_seeds, scan_strategy, scan_summary, sensitivity_scan

    get_spec(args.model)
    scan_strategy(args.strategy)
    levels = check_levels(args.levels)
    seeds = check_seeds(args.seeds)
    if args.csv is not None and not Path(args.csv).parent.exists():
        raise ValueError(f"Cannot write {args.csv}: the folder {Path(args.csv).parent} does not exist.")
    model, _, dataset = load_bundled(args.model)
    scan = sensitivity_scan(model, dataset, levels, strategy=args.strategy, seeds=seeds, layers=args.layers,
                            device=args.device,
                            progress=ProgressLine("sensitivity", enabled=not args.json))
    targets = suggest_targets(scan, args.target) if args.target is not None else None
    if args.csv is not None:
        write_atomically(args.csv, sweep_csv(scan))  # the rows after the `# key: <json>` configuration header
    summary = scan_summary(scan)
    if args.json:
        out = {"model": args.model, "strategy": args.strategy, "levels": list(levels), "seeds": list(seeds),
               "dense_accuracy": scan.attrs["dense_accuracy"], "rows": _records(scan),
               "targets": None if targets is None else {"sparsity": args.target,
                                                        "tolerance": _finite(targets.attrs["tolerance"]),
                                                        "layers": _records(targets)},
               "csv": args.csv}
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.model}: one layer at a time pruned by {args.strategy} (the rest dense), test accuracy; "
          f"dense {scan.attrs['dense_accuracy']:.2%}, {len(seeds)} seed(s)")
    table = summary.pivot(index="layer", columns="level", values="mean").reindex(index=list(dict.fromkeys(
        summary["layer"])))
    header = f"{'layer':<12}{'weights':>10}" + "".join(f"{100 * lv:>8g} %" for lv in table.columns)
    print(header)
    weights = summary.groupby("layer", sort=False)["weights"].first()
    for layer, row in table.iterrows():
        print(f"{layer:<12}{int(weights[layer]):>10,}" + "".join(f"{100 * v:>10.2f}" for v in row))
    if targets is not None:
        print()
        tol = targets.attrs["tolerance"]
        reached = (f"met at a tolerance of {100 * tol:.2f} points of drop per layer" if math.isfinite(tol)
                   else "beyond the scanned levels")
        over = "of the scanned layers" if args.layers else "overall"  # --layers: their weights only (an audit)
        print(f"sensitivity-guided targets for {args.target:.1%} {over} ({targets.attrs['target_zeros']:,} weights "
              f"pruned; {reached}):")
        for r in targets.itertuples():
            print(f"{r.layer:<12}{r.weights:>10,}  {r.level:>8.2%}  ({r.zeros:,} zeros)")
    if args.csv is not None:
        print(f"wrote {args.csv}")
    return 0
