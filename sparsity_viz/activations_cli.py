"""The ``activations`` CLI command, wired into ``python -m sparsity_viz`` by ``cli.py``.

``activations --model lenet300 [--strategy magnitude --sparsity 0.9] [--json]``: per hidden
layer, the share of exactly-zero activations on the test split (``activations.activation_sparsity``),
dead and always-on units; with ``--strategy`` the pruned model is measured next to the dense
one. Bad input raises ``ValueError`` before anything runs; ``cli.main`` prints it as one
``error:`` line and exits with status 2.
"""

from __future__ import annotations

import json


def add_activations_parser(subparsers) -> None:
    """Register ``activations`` on the CLI's subparsers (sets ``func``)."""
    from .cli_args import add_common_args, fraction_arg, seed_arg

    p = subparsers.add_parser("activations", help="per-layer activation sparsity on the test split "
                                                  "(dense, and pruned with --strategy/--sparsity)")
    add_common_args(p)
    p.add_argument("--strategy", default=None, help="prune with this strategy first (needs --sparsity)")
    p.add_argument("--sparsity", type=fraction_arg, default=None)
    p.add_argument("--scope", choices=("layer", "global"), default=None)
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_activations)


def run_activations(args) -> int:
    from .activations import activation_sparsity
    from .cli_shared import load_bundled
    from .data import data_batch
    from .devices import resolve_device
    from .models import get_spec
    from .pruning import get_strategy, prune

    get_spec(args.model)
    if (args.strategy is None) != (args.sparsity is None):
        raise ValueError("--strategy and --sparsity go together.")
    if args.strategy is not None:
        get_strategy(args.strategy)
    model, card, dataset = load_bundled(args.model)
    model = model.to(resolve_device(args.device))
    x, y = dataset.x_test, dataset.y_test
    dense = activation_sparsity(model, x, y)
    result = {"model": args.model, "split": "test", "inputs": dense.count, "strategy": args.strategy,
              "sparsity": args.sparsity, "dense": dense.to_dict()["layers"], "pruned": None}
    pruned_report = None
    if args.strategy is not None:
        pruned = prune(model, args.strategy, args.sparsity, scope=args.scope, seed=args.seed,
                       batch=data_batch(dataset, seed=args.seed))
        pruned_report = activation_sparsity(pruned.model, x, y)
        result["pruned"] = pruned_report.to_dict()["layers"]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.model}: activation sparsity on the test split ({dense.count} inputs)")
    header = f"{'layer':<8} {'units':>6} {'dense zeros':>12} {'dead':>5} {'always on':>9}"
    if pruned_report is not None:
        header += f" | {args.strategy} {args.sparsity:.0%}: {'zeros':>7} {'dead':>5} {'always on':>9}"
    print(header)
    for i, layer in enumerate(dense.layers):
        line = f"{layer.name:<8} {layer.units:>6} {layer.zero_fraction:>12.2%} {len(layer.dead):>5} {len(layer.always_on):>9}"
        if pruned_report is not None:
            p = pruned_report.layers[i]
            line += f" | {' ' * (len(args.strategy) + 6)}{p.zero_fraction:>7.2%} {len(p.dead):>5} {len(p.always_on):>9}"
        print(line)
    return 0
