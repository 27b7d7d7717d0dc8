"""The ``experts`` CLI command, wired into ``python -m sparsity_viz`` by ``cli.py``.

Loads the bundled trained MoE checkpoint (``sample_models/moe_*.safetensors``), or with
``--epochs N`` trains N epochs from the seeded initialisation instead (``--epochs 0``: the
untrained init). Then optionally routes to another number of experts (``--top-k``), prunes
the experts' weights (``--sparsity F --strategy S``: the router stays dense) and whole
experts (``--prune-experts 0,2``), and prints what ``moe.expert_report`` returns: the class x
expert routing table, load per expert, balance loss, accuracy, active vs total parameters.
Bad input (unknown model or strategy, ``--top-k`` outside 1..N, a bad expert index, a
sparsity of 1) raises ``ValueError`` before anything is trained or loaded; ``cli.main``
prints it as one ``error:`` line, exit status 2.
"""

from __future__ import annotations

import json


def add_experts_parser(subparsers) -> None:
    """Register ``experts`` on the CLI's subparsers (sets ``func=run_experts``)."""
    from .cli_args import epochs_arg, finite_nonnegative_arg, fraction_arg, ints_arg, lr_arg, seed_arg, threads_arg

    p = subparsers.add_parser("experts", help="mixture-of-experts routing: class x expert table, load, balance "
                                              "loss, active parameters")
    p.add_argument("--model", default="moe_moons", help="bundled MoE: moe_moons or moe_mnist")
    p.add_argument("--top-k", type=int, default=None, help="experts per input (default: the architecture's)")
    p.add_argument("--seed", type=seed_arg, default=0, help="with --epochs: seeds the initial weights and the shuffling")
    p.add_argument("--epochs", type=epochs_arg, default=None,
                   help="train this many epochs from the seeded init instead of loading the bundled checkpoint "
                        "(0: the untrained init)")
    p.add_argument("--lr", type=lr_arg, default=None, help="with --epochs (default: the bundled recipe's)")
    p.add_argument("--balance-weight", type=finite_nonnegative_arg, default=None,
                   help="with --epochs: load-balancing loss weight (default: the bundled recipe's)")
    p.add_argument("--prune-experts", type=ints_arg, default=[], help="comma-separated experts whose weights are all "
                                                                  "pruned (the router still sends inputs to them)")
    p.add_argument("--sparsity", type=fraction_arg, default=0.0,
                   help="prune this fraction of the experts' weights (the router is never pruned)")
    p.add_argument("--strategy", default="global_magnitude", help="pruning strategy for --sparsity")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--threads", type=threads_arg, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_experts)


def _check(model_name: str, k: int, prune_experts, sparsity: float, strategy: str, weight: float | None) -> None:
    """Every argument error, before anything is loaded or trained."""
    from .moe import get_moe_spec, moe_strategy_names

    spec = get_moe_spec(model_name)
    if not 1 <= k <= spec.num_experts:
        raise ValueError(f"--top-k must be between 1 and {spec.num_experts} for {model_name}, got {k}.")
    for e in prune_experts:
        if not 0 <= e < spec.num_experts:
            raise ValueError(f"--prune-experts: expert {e} does not exist; {model_name} has experts "
                             f"0..{spec.num_experts - 1}.")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"--sparsity must be in [0, 1) (1 would prune every expert weight), got {sparsity}.")
    if sparsity > 0 and strategy not in moe_strategy_names():
        raise ValueError(f"--strategy must be one of {', '.join(moe_strategy_names())}, got {strategy!r}.")
    if weight is not None and not weight >= 0:
        raise ValueError(f"--balance-weight must be >= 0, got {weight}.")


def experts_result(model_name: str, *, top_k: int | None = None, seed: int = 0, epochs: int | None = None,
                   lr: float | None = None, balance_weight: float | None = None, prune_experts=(),
                   sparsity: float = 0.0, strategy: str = "global_magnitude", split: str = "test") -> dict:
    """What ``experts --json`` prints (a library call, so tests compare the CLI against it)."""
    from dataclasses import replace

    from .checkpoints import load_sample
    from .data import load_dataset
    from .moe import get_moe_spec, expert_report, prune_moe, train_moe, with_top_k
    from .samples import MOE_RECIPES

    spec = get_moe_spec(model_name)
    k = spec.top_k if top_k is None else top_k
    _check(model_name, k, prune_experts, sparsity, strategy, balance_weight)
    recipe = MOE_RECIPES[model_name]
    dataset = load_dataset(spec.dataset)
    weight = None
    if epochs is None:
        model, _ = load_sample(model_name)
        model = with_top_k(model, k)
        source = "bundled checkpoint"
    else:
        model = with_top_k(spec.build(seed), k)
        source = f"seeded init (seed {seed}), trained {epochs} epochs"
        if epochs > 0:
            weight = recipe.balance_weight if balance_weight is None else balance_weight
            config = replace(recipe.config, epochs=epochs, lr=lr if lr is not None else recipe.config.lr, seed=seed,
                             device="cpu")
            model = train_moe(model, dataset, config, balance_weight=weight)[0].model
    if prune_experts or sparsity > 0:
        model, _ = prune_moe(model, experts=prune_experts, sparsity=sparsity, strategy=strategy, data=dataset,
                             seed=seed)
    report = expert_report(model, dataset, split)
    return {"model": model_name, "dataset": spec.dataset, "source": source, "seed": seed, "epochs": epochs,
            "balance_weight": weight, "pruned_experts": sorted(set(prune_experts)), "sparsity": sparsity,
            "strategy": strategy if sparsity > 0 else None, **report}


def run_experts(args) -> int:
    """The ``experts`` command; returns the exit status (bad input raises ``ValueError``)."""
    unused = [flag for flag, value in (("--lr", args.lr), ("--balance-weight", args.balance_weight))
              if value is not None]
    if unused and args.epochs is None:  # they were ignored without a word (an audit), as prune refuses --dropout
        raise ValueError(f"{' and '.join(unused)} act while training; add --epochs N (or drop them: the bundled "
                         "checkpoint is used as it is).")
    result = experts_result(args.model, top_k=args.top_k, seed=args.seed, epochs=args.epochs, lr=args.lr,
                            balance_weight=args.balance_weight, prune_experts=args.prune_experts,
                            sparsity=args.sparsity, strategy=args.strategy, split=args.split)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    n = result["num_experts"]
    print(f"{result['model']} on {result['dataset']} ({result['split']}, {result['inputs']} inputs): "
          f"{n} experts, top-{result['top_k']}, {result['source']}, accuracy {result['accuracy']:.2%}")
    print(f"{'class':<10}" + "".join(f"{'expert ' + str(e):>10}" for e in range(n)))
    for name, row in zip(result["classes"], result["routing_table"]):
        print(f"{name:<10}" + "".join(f"{v:>10}" for v in row))
    print(f"{'load':<10}" + "".join(f"{v:>10.1%}" for v in result["load_fraction"]))
    print(f"balance loss {result['balance_loss']:.4f} (1.0 = uniform, at most {n / result['top_k']:g}: the router "
          "certain of one expert)")
    print(f"active parameters per input {result['active_parameters']:,} of {result['total_parameters']:,} "
          f"({result['active_parameters'] / result['total_parameters']:.1%}); FLOPs per input "
          f"{result['flops_per_input']:,} vs {result['flops_per_input_all_experts']:,} running every expert")
    return 0
