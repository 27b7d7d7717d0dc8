"""Command line: ``python -m sparsity_viz models | train-samples | prune | sweep | figure | bench | sparse-save
| quantize | compress | activations | experts | sensitivity``.

Bad arguments exit with status 2 and one ``error:`` line on stderr, never a traceback (the argument
types are in ``cli_args``; what the subcommands share to run in ``cli_shared``). Training that diverges (``prune
--finetune-epochs``, ``sweep``, ``train-samples``) and a write that fails after all exit with
status 1 and one ``error:`` line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .atomic_write import write_atomically
from .checkpoints import CheckpointError
from .cli_args import (CliError, add_common_args, directory_arg, epochs_arg, fraction_arg, fractions_arg, lr_arg,
                       names_arg, nonempty_arg, output_arg, rate_arg, safetensors_output_arg, same_file, seed_arg,
                       seeds_arg, threads_arg, train_fraction_arg, workers_arg)
from .cli_shared import ProgressLine, bundled_finetune_config, load_bundled
from .devices import DeviceUnavailableError, configure_threads
from .divergence import TrainingDiverged
from .executors import PointFailedError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise CliError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from .pruning import STRATEGIES

    parser = _Parser(prog="sparsity_viz", description="Watch neural-network sparsity happen.")
    parser.add_argument("--version", action="version", version=f"sparsity_viz {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("models", help="list bundled models with their accuracy")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("train-samples", help="train every bundled sample model (seeded) into sample_models/")
    p.add_argument("--only", type=names_arg, default=None, help="comma-separated model names")
    p.add_argument("--dir", type=directory_arg, default=None, help="output directory (default: sample_models/)")
    p.add_argument("--threads", type=threads_arg, default=None)

    p = sub.add_parser("prune", help="prune a bundled model; print accuracy and the per-layer report")
    add_common_args(p)
    p.add_argument("--strategy", required=True, help=f"one of {', '.join(STRATEGIES)}")
    p.add_argument("--sparsity", required=True, type=fraction_arg)
    p.add_argument("--scope", choices=("layer", "global"), default=None)
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--finetune-epochs", type=epochs_arg, default=0,
                   help="fine-tuning epochs after pruning; a scheduled strategy prunes while it trains them "
                        "(iterative: once per round; the JSON's train_epochs counts all)")
    p.add_argument("--finetune-lr", type=lr_arg, default=None, help="default: 1/10 of the model's training lr")
    p.add_argument("--dropout", type=rate_arg, default=0.0, help="dropout rate on hidden activations while fine-tuning")
    p.add_argument("--dropconnect", type=rate_arg, default=0.0, help="DropConnect rate on weights while fine-tuning")
    p.add_argument("--train-fraction", type=train_fraction_arg, default=1.0,
                   help="fine-tune on this stratified share of the training split, e.g. 0.1 (default 1)")
    p.add_argument("--save", type=safetensors_output_arg, default=None, help="write the pruned model (.safetensors) here")
    p.add_argument("--save-masks", type=safetensors_output_arg, default=None, help="write the masks (.safetensors) here")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("sweep", help="accuracy over strategies x sparsity levels x seeds")
    add_common_args(p)
    p.add_argument("--strategies", required=True, type=names_arg)
    p.add_argument("--levels", required=True, type=fractions_arg)
    p.add_argument("--seeds", type=seeds_arg, default=[0, 1, 2],
                   help="comma-separated seeds (default 0,1,2: mean ± std; unseeded strategies cost one seed)")
    p.add_argument("--finetune-epochs", type=epochs_arg, default=0)
    p.add_argument("--finetune-lr", type=lr_arg, default=None)
    p.add_argument("--schedule-epochs", type=epochs_arg, default=0,
                   help="training epochs of scheduled strategies (gradual, iterative, set, rigl), at the fine-tuning "
                        "lr; iterative trains them once per round (its rows' train_epochs count all); default: "
                        "--finetune-epochs; with neither they are skipped")
    from .executors import EXECUTORS

    p.add_argument("--executor", choices=sorted(EXECUTORS), default=None,
                   help="where points run (default: serial, or process when --workers > 1 and points train)")
    p.add_argument("--workers", type=workers_arg, default=1,
                   help="worker processes for --executor process; CPUs of a local Ray for --executor ray when "
                        "above 1 (with 1, the local Ray takes every CPU this process may use)")
    p.add_argument("--address", default=None,
                   help="--executor ray: join the Ray cluster at HOST:PORT (default: start a local Ray here)")
    p.add_argument("--store", type=nonempty_arg, default=None,
                   help="results store (.csv file or directory): each finished point is written as it arrives, "
                        "and a re-run with the same configuration computes only the points missing there")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", type=output_arg, default=None,
                     help="write the results as CSV to this file, after a '# key: value' header with the full "
                          "configuration and its run id (pandas: read_csv(path, comment='#'))")
    out.add_argument("--json", action="store_true")

    from .figure_cli import FIGURE_KINDS

    p = sub.add_parser("figure", help="write one figure as .png, .svg or .html")
    p.add_argument("kind", choices=sorted(FIGURE_KINDS))
    add_common_args(p)
    p.add_argument("--strategy", default="global_magnitude")
    p.add_argument("--sparsity", type=fraction_arg, default=0.9)
    p.add_argument("--layer", default=None, help="layer for heatmap/histogram (default: first)")
    p.add_argument("--sample", type=int, default=0, help="test sample index for attribution")
    p.add_argument("--method", default="integrated_gradients", help="attribution method")
    p.add_argument("--levels", type=fractions_arg, default=[0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99])
    p.add_argument("--strategies", type=names_arg, default=["magnitude", "global_magnitude", "random"])
    p.add_argument("--out", type=output_arg, required=True, help="output file: .png, .svg, .pdf or .html")

    from .backend.cli import add_bench_parser, add_sparse_save_parser

    add_bench_parser(sub)  # sets func=run_bench
    add_sparse_save_parser(sub)  # sets func=run_sparse_save

    from .quantize_cli import add_quantize_parsers

    add_quantize_parsers(sub)  # quantize, compress (func=run_quantize / run_compress)

    from .experts_cli import add_experts_parser

    add_experts_parser(sub)  # experts (func=run_experts)

    from .activations_cli import add_activations_parser

    add_activations_parser(sub)  # activations (func=run_activations)

    from .sensitivity_cli import add_sensitivity_parser

    add_sensitivity_parser(sub)  # sensitivity (func=run_sensitivity)
    return parser


def cmd_models(args) -> int:
    from .checkpoints import available_moe_samples, available_samples, load_card

    def card(name: str) -> dict:
        c = load_card(name)
        needed = ["parameters", "test_accuracy", "description"] + (["active_parameters"] if name in moe else [])
        missing = [k for k in needed if k not in c] + ([] if isinstance(c.get("dataset"), dict) and "name" in c["dataset"]
                                                        else ["dataset.name"])
        if missing:
            raise CheckpointError(f"{name}.json: the model card lacks {', '.join(missing)}.")
        return {**c, "name": c.get("name", name)}

    moe = set(available_moe_samples())  # architecture kind "moe": see `experts`
    rows = [card(n) for n in available_samples()]
    moe_rows = [card(n) for n in available_moe_samples()]
    if args.json:
        print(json.dumps(rows + moe_rows, indent=2))
        return 0
    print(f"{'model':<12} {'dataset':<9} {'params':>9} {'test acc':>9}  description")
    for c in rows:
        print(f"{c['name']:<12} {c['dataset']['name']:<9} {c['parameters']:>9,} {c['test_accuracy']:>9.2%}  {c['description']}")
    if moe_rows:
        print("mixture of experts (use `experts --model NAME`; params = all experts, active = per input):")
        for c in moe_rows:
            print(f"{c['name']:<12} {c['dataset']['name']:<9} {c['parameters']:>9,} {c['test_accuracy']:>9.2%}  "
                  f"{c['description']}; active {c['active_parameters']:,}")
    return 0


def cmd_train_samples(args) -> int:
    from .samples import SAMPLE_NAMES, train_samples

    names = list(SAMPLE_NAMES) if args.only is None else args.only
    unknown = [n for n in names if n not in SAMPLE_NAMES]
    if unknown:
        raise CliError(f"unknown sample model(s) {', '.join(unknown)}; choose from {', '.join(SAMPLE_NAMES)}")

    def report(name, card):
        print(f"{name:<12} test accuracy {card['test_accuracy']:.2%}  ({card['train_seconds']:.1f} s)", flush=True)

    train_samples(names, args.dir, on_model=report)
    return 0


def cmd_prune(args) -> int:
    from .masks import save_masks
    from .pruning import get_strategy, prune
    from .reports import sparsity_report
    from .training import evaluate_dataset, train
    from .checkpoints import save_model
    from .data import data_batch, train_subset

    strategy = get_strategy(args.strategy, scope=args.scope, seed=args.seed)
    scheduled = strategy.scheduled
    if scheduled and args.finetune_epochs <= 0:  # its one-shot masks are plain magnitude's: not the strategy
        raise CliError(f"{args.strategy} prunes while it trains (a scheduled strategy); give it a training budget "
                       "with --finetune-epochs N")
    if args.save and args.save_masks and same_file(args.save, args.save_masks):  # the masks overwrote the model
        raise CliError("--save and --save-masks name the same file; give two")
    if (args.dropout or args.dropconnect or args.train_fraction < 1) and args.finetune_epochs <= 0:
        raise CliError("--dropout / --dropconnect / --train-fraction act while fine-tuning; add --finetune-epochs N")
    model, card, dataset = load_bundled(args.model)
    dense = evaluate_dataset(model, dataset, device=args.device)
    config = bundled_finetune_config(card, args.finetune_epochs, args.finetune_lr, args.device, args.dropout,
                                     args.dropconnect, args.train_fraction) if args.finetune_epochs > 0 else None
    if scheduled:  # pruned while trained for the budget, as sweep --schedule-epochs runs it
        run = strategy.run(model, dataset, args.sparsity, config,
                           progress=ProgressLine(f"{args.strategy} (prunes while training)"))
        pruned, net, one_shot = run, run.model, None
    else:
        pruned = prune(model, strategy, args.sparsity, batch=data_batch(dataset, seed=args.seed))
        net = pruned.model
        one_shot = evaluate_dataset(net, dataset, device=args.device)
    tuned, used = None, dataset
    if config is not None:
        if not scheduled:
            net = train(net, dataset, config, masks=pruned.masks, progress=ProgressLine("fine-tuning")).model
        tuned = evaluate_dataset(net, dataset, device=args.device)
        used = train_subset(dataset, config.train_fraction, seed=config.seed)  # the samples train() used
    final = tuned or one_shot
    # what the run trained: iterative pruning trains its budget once per round, (1 + rounds) x (an audit)
    train_epochs = strategy.training_epochs(args.sparsity, config) if config is not None else 0
    fit = evaluate_dataset(net, used, split="train", device=args.device)  # eval mode: dropout / DropConnect off
    report = sparsity_report(net, pruned.masks)
    if args.save:
        print(f"wrote the pruned model to {save_model(net.cpu(), args.save)}", file=sys.stderr)
    if args.save_masks:
        save_masks(pruned.masks, args.save_masks)
        print(f"wrote the masks to {args.save_masks}", file=sys.stderr)
    result = {
        "model": args.model,
        "strategy": args.strategy,
        "target_sparsity": args.sparsity,
        "achieved_sparsity": float(report["sparsity"].iloc[-1]),
        "dense_accuracy": dense.accuracy,
        "kind": "scheduled" if scheduled else "one_shot",
        "pruned_accuracy": one_shot.accuracy if one_shot else None,  # a scheduled strategy has no one-shot point
        "finetuned_accuracy": tuned.accuracy if tuned else None,
        "finetune_epochs": args.finetune_epochs,
        "train_epochs": train_epochs,
        "dropout": args.dropout,
        "dropconnect": args.dropconnect,
        "train_fraction": args.train_fraction,
        "train_samples": len(used.y_train),
        "train_accuracy": fit.accuracy,  # final model, eval mode, on the training samples used
        "test_accuracy": final.accuracy,
        "train_test_gap": fit.accuracy - final.accuracy,
        "layers": report.to_dict(orient="records"),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.model}: {args.strategy} at {args.sparsity:.1%} target, {result['achieved_sparsity']:.2%} achieved")
    if scheduled:
        print(f"accuracy: dense {dense.accuracy:.2%} -> pruned while training ({train_epochs} epochs) "
              f"{tuned.accuracy:.2%}")
    else:
        print(f"accuracy: dense {dense.accuracy:.2%} -> pruned {one_shot.accuracy:.2%}", end="")
        print(f" -> fine-tuned ({args.finetune_epochs} epochs) {tuned.accuracy:.2%}" if tuned else "")
    print(f"final model (eval mode): train {fit.accuracy:.2%} on {len(used.y_train):,} samples, test "
          f"{final.accuracy:.2%}, gap {100 * (fit.accuracy - final.accuracy):+.1f} points")
    print(report.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def cmd_sweep(args) -> int:
    from .experiments import summarize, sweep
    from .pruning import is_scheduled

    scheduled = [s for s in args.strategies if is_scheduled(s)]
    if len(scheduled) == len(args.strategies) and not (args.schedule_epochs or args.finetune_epochs):
        # every strategy would be skipped: an empty table read as a sweep that ran (exit 0)
        raise CliError(f"nothing to sweep: {', '.join(scheduled)} prune while they train (scheduled strategies) "
                       "and need a training budget; add --schedule-epochs N")
    executor = args.executor
    if args.address is not None and executor != "ray":
        raise CliError("--address is for --executor ray")
    if args.store and args.csv and same_file(args.store, args.csv):  # the CSV replaced the stored rows
        raise CliError("--store and --csv name the same file; the CSV would replace the store's rows")
    if executor == "ray":
        from .executors import RayExecutor

        executor = RayExecutor(address=args.address, workers=args.workers)
        executor.check()  # ray installed, the address answers: before any work
    model, card, dataset = load_bundled(args.model)
    finetune = bundled_finetune_config(card, args.finetune_epochs, args.finetune_lr, args.device) if args.finetune_epochs else None
    schedule = bundled_finetune_config(card, args.schedule_epochs, args.finetune_lr, args.device) if args.schedule_epochs else None
    frame = sweep(model, dataset, args.strategies, args.levels, args.seeds, finetune=finetune, schedule=schedule,
                  executor=executor, workers=args.workers, device=args.device, progress=ProgressLine("sweep"),
                  model_name=args.model, store=args.store)
    if args.store:
        print(f"results store {args.store}: {len(frame)} points of run {frame.attrs['run_id']} "
              f"({frame.attrs['resumed']} read back, {len(frame) - frame.attrs['resumed']} computed)", file=sys.stderr)
    for name, reason in frame.attrs["skipped"].items():
        print(f"skipped {name}: {reason} Add --schedule-epochs N.", file=sys.stderr)
    if args.csv:
        from .experiments import sweep_csv

        write_atomically(args.csv, sweep_csv(frame))
        print(f"wrote {len(frame)} rows to {args.csv} (run id {frame.attrs['run_id']})")
    elif args.json:
        print(frame.to_json(orient="records", indent=2))
    else:
        print(f"run id {frame.attrs['run_id']} · dense accuracy {frame.attrs['dense_accuracy']:.2%}")
        print(summarize(frame).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def cmd_figure(args) -> int:
    from .figure_cli import check_figure_path, make_figure, write_figure

    check_figure_path(args.out)  # a bad suffix before the figure's work (a curves sweep takes minutes)
    model, card, dataset = load_bundled(args.model)
    fig = make_figure(args.kind, model, dataset, args)
    path = write_figure(fig, args.out)
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "models": cmd_models,
    "train-samples": cmd_train_samples,
    "prune": cmd_prune,
    "sweep": cmd_sweep,
    "figure": cmd_figure,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        configure_threads(getattr(args, "threads", None))
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        return args.func(args)
    except CliError as exc:
        return _error(str(exc), 2)
    except (ValueError, CheckpointError, DeviceUnavailableError, KeyError) as exc:  # a KeyError's str() is quoted;
        # any other's str() is its message (a UnicodeDecodeError's args[0] is only "utf-8")
        return _error(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc), 2)
    except OSError as exc:  # a write that failed after all (disk full, permissions changed): one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _error(f"{where}{exc.strerror or exc}", 1)
    except (TrainingDiverged, PointFailedError) as exc:  # one line: the epoch (or the Ray point), the reason
        return _error(str(exc), 1)
    except KeyboardInterrupt:
        return _error("interrupted", 130)


MAX_ERROR_CHARS = 1000  # an error echoes its input: a 100 kB strategy name is cut in the middle, not printed whole


def _error(message: str, status: int) -> int:
    """Print ``message`` as the one ``error:`` line (its middle cut past ``MAX_ERROR_CHARS``); return ``status``."""
    if len(message) > MAX_ERROR_CHARS:
        half = MAX_ERROR_CHARS // 2
        message = f"{message[:half]} [... {len(message) - 2 * half:,} characters cut ...] {message[-half:]}"
    print(f"error: {message}", file=sys.stderr)
    return status
