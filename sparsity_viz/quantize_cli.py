"""The ``quantize`` and ``compress`` CLI commands, wired into ``python -m sparsity_viz`` by ``cli.py``.

``quantize``: (optionally prune, then) quantize a bundled model, with quantization-aware
fine-tuning when ``--finetune-epochs`` is given; prints the accuracy before and after, the
zeros quantization created per layer and the size table (dense fp32 -> CSR -> codes ->
Huffman). ``--method uniform`` is an alias of ``uniform_symmetric``: symmetric is the usual
choice for *weights* (PyTorch's default weight observers and most int8 runtimes use a
symmetric, zero-point-free weight grid), affine being the usual choice for activations.

``compress``: the Deep Compression pipeline (``compression.pipeline.compress``), one row
per stage.

Bad input (0 or 33 bits, an unknown method, model or strategy) raises ``ValueError``
before anything is loaded or trained; ``cli.main`` prints it as one ``error:`` line and
exits with status 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .atomic_write import write_atomically

METHOD_ALIASES = {"uniform": "uniform_symmetric", "symmetric": "uniform_symmetric", "affine": "uniform_affine"}


def resolve_method(name: str) -> str:
    """A registered quantizer name for ``name`` (accepting ``METHOD_ALIASES``); ``ValueError`` if unknown."""
    from .quantization import QUANTIZERS

    method = METHOD_ALIASES.get(name, name)
    if method not in QUANTIZERS:
        raise ValueError(f"Unknown quantization method {name!r}; choose one of "
                         f"{', '.join([*QUANTIZERS, *METHOD_ALIASES])}.")
    return method


def _bits(given: int | None, method: str, default: int) -> int:
    """The bits asked for, else ``default`` moved into the method's range (ternary's 2, never a default it refuses)."""
    from .quantization.registry import default_bits

    return given if given is not None else default_bits(method, default)


def _sparsity_arg(text: str) -> float | str:
    """A fraction in [0, 1], or "paper" (Han et al.'s per-layer targets)."""
    from .cli_args import fraction_arg

    return text if text == "paper" else fraction_arg(text)


def add_quantize_parsers(subparsers) -> None:
    """Register ``quantize`` and ``compress`` on the CLI's subparsers (each sets ``func``)."""
    from .cli_args import add_common_args, epochs_arg, fraction_arg, lr_arg, safetensors_output_arg, seed_arg
    from .quantization.registry import bits_ranges

    p = subparsers.add_parser("quantize", help="quantize a bundled model (optionally pruned, optionally with QAT); "
                                               "accuracy, zeros created, size table")
    add_common_args(p)
    p.add_argument("--method", default="uniform_symmetric",
                   help="uniform_symmetric (alias: uniform), uniform_affine (alias: affine), kmeans, ternary")
    p.add_argument("--bits", type=int, default=None,
                   help=f"bits per weight ({bits_ranges()}); default: 8, ternary 2")
    p.add_argument("--per-channel", action="store_true", help="one scale per output channel (uniform, ternary)")
    p.add_argument("--sparsity", type=fraction_arg, default=None, help="prune to this sparsity first")
    p.add_argument("--strategy", default="global_magnitude", help="pruning strategy (with --sparsity)")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--prune-finetune-epochs", type=epochs_arg, default=0,
                   help="retrain the pruned fp32 model this many epochs (masks held) before quantizing")
    p.add_argument("--finetune-epochs", type=epochs_arg, default=0,
                   help="quantization-aware fine-tuning epochs (straight-through estimator; k-means: trained "
                        "centroids); 0 = post-training quantization")
    p.add_argument("--finetune-lr", type=lr_arg, default=None, help="default: 1/10 of the model's training lr")
    p.add_argument("--save", type=safetensors_output_arg, default=None, help="write the compressed checkpoint (.safetensors) here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_quantize)

    p = subparsers.add_parser("compress", help="Deep Compression: prune, fine-tune, k-means quantize, train the "
                                               "codebook, Huffman-code; accuracy and bytes per stage")
    add_common_args(p)
    p.add_argument("--sparsity", type=_sparsity_arg, default=0.9,
                   help="target sparsity, or 'paper' for Han et al.'s per-layer targets (lenet300, lenet5)")
    p.add_argument("--strategy", default="global_magnitude")
    p.add_argument("--method", default="kmeans")
    p.add_argument("--bits-conv", type=int, default=None,
                   help=f"bits per conv weight ({bits_ranges()}); default: the paper's 8, ternary 2")
    p.add_argument("--bits-fc", type=int, default=None,
                   help="bits per fully connected weight; default: the paper's 5 (AlexNet), ternary 2")
    p.add_argument("--finetune-epochs", type=epochs_arg, default=10, help="retraining after pruning")
    p.add_argument("--qat-epochs", type=epochs_arg, default=5, help="codebook training after quantizing")
    p.add_argument("--finetune-lr", type=lr_arg, default=None, help="default: 1/10 of the model's training lr")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--save", type=safetensors_output_arg, default=None, help="write the compressed checkpoint (.safetensors) here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_compress)


def _check_model(name: str) -> None:
    from .models import get_spec

    get_spec(name)


def _table(frame) -> str:
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def _records(frame) -> list[dict]:
    """Rows as plain Python values (full float precision; NaN as null, so the JSON is strict)."""

    def plain(v):
        v = v.item() if hasattr(v, "item") else v
        return None if isinstance(v, float) and math.isnan(v) else v

    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def run_quantize(args) -> int:
    """The ``quantize`` command; returns the exit status (bad input raises ``ValueError``)."""
    from .cli_shared import ProgressLine, bundled_finetune_config, load_bundled
    from .compression.checkpoint import save_compressed
    from .compression.size import size_table
    from .data import data_batch
    from .masks import masks_from_zeros
    from .pruning import get_one_shot_strategy, prune
    from .quantization import get_quantizer, quantize_model
    from .quantization.qat import quantize_aware_finetune
    from .training import evaluate_dataset, train

    method = resolve_method(args.method)
    args.bits = _bits(args.bits, method, 8)
    get_quantizer(method, args.bits, args.per_channel)  # 0 / 33 bits, per channel for k-means: one line, exit 2
    _check_model(args.model)
    get_one_shot_strategy(args.strategy, "quantize --sparsity (prune once, then quantize)", seed=args.seed)  # a
    # bad name is an error even when --sparsity does not use it
    if args.sparsity is None and args.prune_finetune_epochs:
        raise ValueError("--prune-finetune-epochs needs --sparsity.")
    model, card, dataset = load_bundled(args.model)
    dense = evaluate_dataset(model, dataset, device=args.device).accuracy
    net, masks, pruned_acc, tuned_acc = model, masks_from_zeros(model), None, None
    if args.sparsity is not None:
        pruned = prune(model, args.strategy, args.sparsity, seed=args.seed, batch=data_batch(dataset, seed=args.seed))
        net, masks = pruned.model, pruned.masks
        pruned_acc = evaluate_dataset(net, dataset, device=args.device).accuracy
        if args.prune_finetune_epochs:
            config = bundled_finetune_config(card, args.prune_finetune_epochs, args.finetune_lr, args.device)
            net = train(net, dataset, config, masks=masks, progress=ProgressLine("fine-tuning")).model.cpu()
            tuned_acc = evaluate_dataset(net, dataset, device=args.device).accuracy
    before = evaluate_dataset(net, dataset, device=args.device).accuracy
    ptq = quantize_model(net, method, args.bits, per_channel=args.per_channel, masks=masks)
    ptq_acc = evaluate_dataset(ptq.model, dataset, device=args.device).accuracy
    quantized, after = ptq, ptq_acc
    if args.finetune_epochs:
        config = bundled_finetune_config(card, args.finetune_epochs, args.finetune_lr, args.device)
        quantized = quantize_aware_finetune(net, dataset, method, args.bits, config, per_channel=args.per_channel,
                                            masks=masks, progress=ProgressLine("quantization-aware fine-tuning"))
        after = evaluate_dataset(quantized.model, dataset, device=args.device).accuracy
    zeros = quantized.report()
    sizes = size_table(net, masks, quantized=quantized)
    saved = None
    if args.save:
        data = save_compressed(quantized, args.save)
        saved = {"path": str(Path(args.save)), "bytes": len(data)}
    total = zeros.iloc[-1]
    result = {
        "model": args.model, "method": method, "bits": args.bits, "per_channel": args.per_channel,
        "sparsity": args.sparsity, "strategy": args.strategy if args.sparsity is not None else None,
        "dense_accuracy": dense, "pruned_accuracy": pruned_acc, "pruned_finetuned_accuracy": tuned_acc,
        "accuracy_before": before, "ptq_accuracy": ptq_acc, "accuracy_after": after,
        "finetune_epochs": args.finetune_epochs,
        "zeros_created": int(total["zeros_created"]),
        "zero_fraction_after": float(total["zeros_after"]) / float(total["weights"]),
        "layers": _records(zeros), "sizes": _records(sizes), "saved": saved,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    head = f"{args.model}: {method} {args.bits} bit{'s' if args.bits != 1 else ''}"
    head += " per channel" if args.per_channel else " per tensor"
    if args.sparsity is not None:
        head += f", pruned by {args.strategy} to {args.sparsity:.1%}"
    print(head)
    line = f"accuracy: dense {dense:.2%}"
    if pruned_acc is not None:
        line += f" -> pruned {pruned_acc:.2%}"
    if tuned_acc is not None:
        line += f" -> fine-tuned {tuned_acc:.2%}"
    line += f" -> quantized {ptq_acc:.2%}"
    if args.finetune_epochs:
        line += f" -> quantization-aware fine-tuned ({args.finetune_epochs} epochs) {after:.2%}"
    print(line)
    print(f"zeros created by quantization: {int(total['zeros_created']):,} "
          f"(weights exactly 0 after: {result['zero_fraction_after']:.2%})")
    print(_table(zeros))
    print()
    print(_table(sizes))
    if saved:
        print(f"wrote {saved['path']} ({saved['bytes']:,} bytes)")
    return 0


def run_compress(args) -> int:
    """The ``compress`` command: the Deep Compression pipeline, one row per stage."""
    from .cli_shared import ProgressLine, load_bundled
    from .compression.pipeline import DEFAULT_BITS, PAPER_SPARSITY, compress, finetune_config
    from .pruning import get_one_shot_strategy
    from .models import build_model
    from .quantization import get_quantizer
    from .quantization.qat import quantizers_for

    method = resolve_method(args.method)
    _check_model(args.model)
    get_one_shot_strategy(args.strategy, "Deep Compression (prune once, then retrain)", seed=args.seed)
    bits = {kind: _bits(given, method, DEFAULT_BITS[kind]) for kind, given in (("conv", args.bits_conv),
                                                                               ("fc", args.bits_fc))}
    quantizers_for(build_model(args.model, seed=0), method, bits)  # bad bits / method: one line, before loading
    for kind, given in bits.items():  # bits for a kind the model lacks too (--bits-conv 99 on an MLP passed)
        get_quantizer(method, given)
    if args.sparsity == "paper":
        if args.model not in PAPER_SPARSITY:
            raise ValueError(f"No per-layer targets from the paper for {args.model!r} "
                             f"(have {', '.join(PAPER_SPARSITY)}); give a number.")
        sparsity = PAPER_SPARSITY[args.model]
    else:
        sparsity = args.sparsity
    model, card, dataset = load_bundled(args.model)
    recipe = card.get("recipe", {})
    config = finetune_config(lr=recipe.get("lr", 1e-3), batch_size=recipe.get("batch_size", 64), device=args.device,
                             seed=args.seed)
    if args.finetune_lr is not None:
        from dataclasses import replace

        config = replace(config, lr=args.finetune_lr)
    result = compress(model, dataset, sparsity=sparsity, strategy=args.strategy, bits=bits, method=method,
                      finetune_epochs=args.finetune_epochs, qat_epochs=args.qat_epochs, config=config,
                      seed=args.seed, progress=ProgressLine("compress"))
    if args.save:
        write_atomically(args.save, result.checkpoint)
    out = {"model": args.model, **result.settings, "stages": _records(result.stages),
           "layers": _records(result.sizes), "checkpoint_bytes": len(result.checkpoint),
           "saved": str(Path(args.save)) if args.save else None}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.model}: Deep Compression ({method}, bits {out['bits']}, {args.finetune_epochs} fine-tuning + "
          f"{args.qat_epochs} QAT epochs at lr {config.lr:g})")
    print(_table(result.stages))
    print()
    print(_table(result.sizes))
    print(f"compressed checkpoint: {len(result.checkpoint):,} bytes" + (f", wrote {args.save}" if args.save else ""))
    return 0
