"""``bench`` and ``sparse-save`` subcommands, wired into ``python -m sparsity_viz`` by the CLI.

Bad arguments print one line on stderr and return a non-zero code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ..atomic_write import write_atomically
from ..devices import configure_threads

if TYPE_CHECKING:
    from torch import nn


MAX_BATCH = 65_536  # the inputs of one timed call: 784 x 65,536 floats is 205 MB


def _batches(text: str) -> list[int]:
    """``--batch``: distinct whole numbers from 1 to ``MAX_BATCH``, by the CLI's list rules (no empty item, none
    twice: ``1,1`` ran the whole benchmark, then failed on a duplicate index)."""
    from ..cli_args import bounded_int_arg, distinct_items, listed_items

    return distinct_items([bounded_int_arg(v, 1, MAX_BATCH, "a --batch size") for v in listed_items(text)], text)


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bench`` on an argparse subparsers object."""
    from ..cli_args import repeats_arg, seed_arg, threads_arg

    p = subparsers.add_parser("bench", help="latency of every sparse format vs dense for a pruned model")
    p.add_argument("--model", default="lenet300")
    p.add_argument("--strategy", default="global_magnitude")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--batch", type=_batches, default=[1, 32, 256], help="comma-separated batch sizes")
    p.add_argument("--repeats", type=repeats_arg, default=30)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=threads_arg, default=None, help="torch intra-op threads (default: project policy)")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    p.set_defaults(func=run_bench)
    return p


def prune_sample(model_name: str, strategy: str, sparsity: float, seed: int = 0) -> nn.Module:
    """The bundled trained model (random init if its checkpoint is missing), pruned as asked.

    Data-driven strategies (``needs_data``: SNIP, GraSP, Taylor, RigL) get a batch
    of the model's training data, ``data_batch(dataset, seed=seed)``, as ``prune``
    on the command line does.
    """
    from ..checkpoints import available_samples, load_sample
    from ..data import data_batch, load_dataset
    from ..models import build_model, get_spec
    from ..pruning import get_strategy, prune, wants_batch

    chosen = get_strategy(strategy, seed=seed)
    card: dict = {}
    if model_name in available_samples():
        model, card = load_sample(model_name)
    else:
        model = build_model(model_name, seed=seed)
    batch = None
    if wants_batch(chosen):  # SynFlow reads the input shape off it
        dataset = load_dataset(get_spec(model_name).dataset, seed=card.get("dataset", {}).get("seed", 0))
        batch = data_batch(dataset, seed=seed)
    return prune(model, chosen, sparsity, batch=batch).model


def _pruned(args) -> nn.Module:
    return prune_sample(args.model, args.strategy, args.sparsity, args.seed)


def run_bench(args) -> int:
    """Run the benchmark described by ``args``; 0 on success, 2 on bad input."""
    try:
        batches = args.batch
        threads = configure_threads(args.threads)
        from ..devices import resolve_device

        resolve_device(args.device)
        model = _pruned(args)
    except Exception as exc:  # noqa: BLE001 - one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from ..data import load_dataset
    from ..models import get_spec
    from . import kernels
    from .bench import CALIBRATION_INPUTS, benchmark_model

    test_inputs = load_dataset(get_spec(args.model).dataset).x_test[:CALIBRATION_INPUTS]  # timed on real inputs
    df = benchmark_model(model, batches, device=args.device, repeats=args.repeats, calibration=test_inputs)
    if args.json:
        print(json.dumps({"model": args.model, "strategy": args.strategy, "sparsity": args.sparsity,
                          "threads": threads, "native_notice": kernels.notice(),
                          "rows": json.loads(df.to_json(orient="records"))}, indent=1))
        return 0
    print(f"{args.model} pruned by {args.strategy} to {args.sparsity:.0%}; torch threads {threads}; "
          f"median of {args.repeats}")
    if kernels.notice():
        print(kernels.notice())
    show = df.drop(columns=["note", "speedup_vs_dense"]).copy()
    print(show.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for _, r in df[df.note.str.len() > 0].iterrows():
        print(f"  [{r.batch} {r.format}] {r.note}")
    return 0


def add_sparse_save_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sparse-save``: prune a model and write a sparse checkpoint, with sizes."""
    from ..cli_args import safetensors_output_arg, seed_arg

    p = subparsers.add_parser("sparse-save", help="save a pruned model as a compact sparse safetensors file")
    p.add_argument("--model", default="lenet300")
    p.add_argument("--strategy", default="global_magnitude")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--out", required=True, type=safetensors_output_arg,
                   help="output .safetensors path (checked before any work)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_sparse_save)
    return p


def run_sparse_save(args) -> int:
    """Write the sparse checkpoint and report its size against dense."""
    try:
        model = _pruned(args)
        from .sparse_checkpoint import load_sparse, save_sparse

        saved = save_sparse(model, metadata={"model": args.model, "strategy": args.strategy, "sparsity": args.sparsity})
    except Exception as exc:  # noqa: BLE001 - bad arguments found while pruning: one clear line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        write_atomically(args.out, saved.data)
        load_sparse(args.out)  # proves it reads back
    except Exception as exc:  # noqa: BLE001 - the write failed after the work: status 1, as the CLI's other writes
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"path": args.out, "bytes": saved.nbytes, "dense_bytes": saved.dense_nbytes,
                          "tensors": saved.tensors}, indent=1))
    else:
        print(saved.report().to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print(f"{args.out}: {saved.nbytes:,} bytes vs {saved.dense_nbytes:,} dense ({saved.nbytes / saved.dense_nbytes:.3f}x)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m sparsity_viz.backend.cli bench ...``) until the lead wires it."""
    parser = argparse.ArgumentParser(prog="sparsity_viz.backend")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bench_parser(sub)
    add_sparse_save_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
