"""The ``experts`` CLI command, wired into ``python -m sparsity_viz`` by ``cli.py``.

Builds a seeded MoE from ``moe.MOE_ARCHITECTURES`` (until the MoE samples are bundled),
optionally trains it briefly with the balance loss (``--epochs``), optionally prunes whole
experts (``--prune-experts 0,2``), and prints what ``moe.expert_report`` returns: the class x
expert routing table, load per expert, balance loss, accuracy, active vs total parameters.
Bad input (unknown model, ``--top-k`` outside 1..N, a bad expert index) raises ``ValueError``
before anything is trained; ``cli.main`` prints it as one ``error:`` line, exit status 2.
"""

from __future__ import annotations

import json


def add_experts_parser(subparsers) -> None:
    """Register ``experts`` on the CLI's subparsers (sets ``func=run_experts``)."""
    from .cli import ints_arg, nonnegative_int_arg

    p = subparsers.add_parser("experts", help="mixture-of-experts routing: class x expert table, load, balance "
                                              "loss, active parameters")
    p.add_argument("--model", default="moe_moons", help="MoE architecture: moe_moons or moe_mnist")
    p.add_argument("--top-k", type=int, default=None, help="experts per input (default: the architecture's)")
    p.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the shuffling")
    p.add_argument("--epochs", type=nonnegative_int_arg, default=0, help="train this many epochs first (0: untrained)")
    p.add_argument("--lr", type=float, default=None, help="default: 1e-2 for 2-D toys, 1e-3 for images")
    p.add_argument("--balance-weight", type=float, default=None, help="load-balancing loss weight (default 0.01)")
    p.add_argument("--prune-experts", type=ints_arg, default=[], help="comma-separated experts whose weights are all "
                                                                  "pruned (the router still sends inputs to them)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_experts)


def experts_result(model_name: str, *, top_k: int | None = None, seed: int = 0, epochs: int = 0,
                   lr: float | None = None, balance_weight: float | None = None, prune_experts=(),
                   split: str = "test") -> dict:
    """What ``experts --json`` prints (a library call, so tests compare the CLI against it)."""
    import torch

    from .data import load_dataset
    from .masks import apply_masks
    from .moe import DEFAULT_BALANCE_WEIGHT, MoEMLP, expert_masks, expert_report, get_moe_spec, train_moe
    from .training import TrainConfig

    spec = get_moe_spec(model_name)
    k = spec.top_k if top_k is None else top_k
    if not 1 <= k <= spec.num_experts:
        raise ValueError(f"--top-k must be between 1 and {spec.num_experts} for {model_name}, got {k}.")
    for e in prune_experts:
        if not 0 <= e < spec.num_experts:
            raise ValueError(f"--prune-experts: expert {e} does not exist; {model_name} has experts "
                             f"0..{spec.num_experts - 1}.")
    weight = DEFAULT_BALANCE_WEIGHT if balance_weight is None else balance_weight
    if not weight >= 0:
        raise ValueError(f"--balance-weight must be >= 0, got {weight}.")
    dataset = load_dataset(spec.dataset)
    torch.manual_seed(seed)
    model = MoEMLP(spec.in_features, spec.expert_hidden, spec.num_classes, spec.num_experts, k)
    if epochs > 0:
        lr = lr if lr is not None else (1e-2 if dataset.kind == "points" else 1e-3)
        model = train_moe(model, dataset, TrainConfig(epochs=epochs, lr=lr, seed=seed, device="cpu"),
                          balance_weight=weight)[0].model
    if prune_experts:
        apply_masks(model, expert_masks(model, prune_experts))
    report = expert_report(model, dataset, split)
    return {"model": model_name, "dataset": spec.dataset, "seed": seed, "epochs": epochs,
            "balance_weight": weight if epochs > 0 else None, "pruned_experts": sorted(set(prune_experts)), **report}


def run_experts(args) -> int:
    """The ``experts`` command; returns the exit status (bad input raises ``ValueError``)."""
    result = experts_result(args.model, top_k=args.top_k, seed=args.seed, epochs=args.epochs, lr=args.lr,
                            balance_weight=args.balance_weight, prune_experts=args.prune_experts, split=args.split)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    n = result["num_experts"]
    print(f"{result['model']} on {result['dataset']} ({result['split']}, {result['inputs']} inputs): "
          f"{n} experts, top-{result['top_k']}, trained {result['epochs']} epochs, accuracy {result['accuracy']:.2%}")
    print(f"{'class':<10}" + "".join(f"{'expert ' + str(e):>10}" for e in range(n)))
    for name, row in zip(result["classes"], result["routing_table"]):
        print(f"{name:<10}" + "".join(f"{v:>10}" for v in row))
    print(f"{'load':<10}" + "".join(f"{v:>10.1%}" for v in result["load_fraction"]))
    print(f"balance loss {result['balance_loss']:.4f} (1.0 = uniform, {n} = all on one expert)")
    print(f"active parameters per input {result['active_parameters']:,} of {result['total_parameters']:,} "
          f"({result['active_parameters'] / result['total_parameters']:.1%}); FLOPs per input "
          f"{result['flops_per_input']:,} vs {result['flops_per_input_all_experts']:,} running every expert")
    return 0
