"""Deep Compression end to end (Han, Mao & Dally 2016): prune, fine-tune, quantize, train the codebook, Huffman-code.

``compress`` runs the three-stage pipeline on a copy of a trained model and measures
every stage on the test split, with the bytes ``size.size_table`` counts from the
actual encoded streams:

============================  =====================================================
stage                         bytes (prunable weights only; biases are fp32 in all)
============================  =====================================================
``dense``                     fp32, 4 bytes per weight
``pruned``                    CSR of the pruned weights (fp32 values, column indices,
                              row pointers)
``pruned+finetuned``          the same, after retraining with the masks held
``quantized``                 codes at ``bits`` bits + relative indices + codebook
``quantized+QAT``             the same, after training the codebook (``qat.py``)
``huffman``                   Huffman-coded codes and indices + tables + codebook;
                              its accuracy is measured on the model *loaded back* from
                              the compressed checkpoint (``checkpoint.py``)
============================  =====================================================

``deep_compression`` returns just the stage table. Fine-tuning follows Han et al.:
1/10 of the original learning rate (``finetune_config``); the weight sharing is
k-means with linear initialisation (``quantization/kmeans.py``), 8 bits conv / 5 bits
fc by default (the paper's AlexNet setting).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import pandas as pd
from torch import nn

from ..backend.sparse_checkpoint import architecture_metadata
from ..data import Dataset, data_batch
from ..masks import Masks, apply_masks, validate_masks
from ..models import prunable_parameters
from ..pruning import get_one_shot_strategy, get_strategy, prune, wants_batch
from ..quantization.model import QuantizedModel
from ..quantization.qat import Bits, layer_bits, quantize_aware_finetune, quantize_layers, quantizers_for
from ..training import TrainConfig, evaluate_dataset, train
from .checkpoint import load_compressed, save_compressed
from .size import size_table
from ..whole_numbers import is_whole

STAGES = ("dense", "pruned", "pruned+finetuned", "quantized", "quantized+QAT", "huffman")
STAGE_COLUMNS = ["stage", "accuracy", "error_pct", "bytes", "ratio_vs_dense", "format", "nonzeros", "sparsity"]
DEFAULT_BITS: dict[str, int] = {"conv": 8, "fc": 5}  # Deep Compression, AlexNet: 8 bits conv, 5 bits fc
# Han et al. 2015 (the pruning stage of Deep Compression), weights KEPT per layer on MNIST:
# LeNet-300-100 fc1 8 %, fc2 9 %, fc3 26 %; LeNet-5 conv1 66 %, conv2 12 %, fc1 8 %, fc2 19 %.
PAPER_SPARSITY: dict[str, dict[str, float]] = {
    "lenet300": {"fc1": 0.92, "fc2": 0.91, "fc3": 0.74},
    "lenet5": {"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81},
}

Sparsity = float | Mapping[str, float]


@dataclass
class CompressionResult:
    """Everything ``compress`` produced: the stage table and the models behind it."""

    stages: pd.DataFrame  # one row per stage (STAGE_COLUMNS)
    sizes: pd.DataFrame  # size_table of the final (QAT) model, per layer + total
    pruned: nn.Module  # after fine-tuning, fp32
    masks: Masks
    quantized: QuantizedModel  # after QAT
    checkpoint: bytes  # the compressed checkpoint (save_compressed)
    stopped: bool = False
    settings: dict = field(default_factory=dict)


def finetune_config(lr: float = 1e-3, batch_size: int = 64, epochs: int = 0, device: str = "auto",
                    optimizer: str = "adam", seed: int = 0) -> TrainConfig:
    """Retraining after pruning at 1/10 of the original ``lr`` (Han et al.)."""
    return TrainConfig(epochs=epochs, lr=lr / 10, batch_size=batch_size, device=device, optimizer=optimizer, seed=seed)


def prune_masks(model: nn.Module, dataset: Dataset, sparsity: Sparsity, strategy: str = "global_magnitude",
                seed: int = 0) -> Masks:
    """Masks at one sparsity (any strategy and scope), or per layer (``{layer: sparsity}``, layer scope).

    Per-layer targets prune each layer to its own sparsity with the strategy's layer scope
    (``global_magnitude`` becomes ``magnitude``). A layer the mapping leaves out stays dense.
    """
    chosen = get_one_shot_strategy(strategy, "Deep Compression (prune once, then retrain)", seed=seed)
    batch = data_batch(dataset, seed=seed) if wants_batch(chosen) else None
    if not isinstance(sparsity, Mapping):
        return prune(model, chosen, float(sparsity), batch=batch).masks
    params = prunable_parameters(model)
    if not sparsity:  # every layer stayed dense, said nowhere (an audit)
        raise ValueError("Per-layer sparsity names no layer: give {layer: sparsity} for at least one.")
    named = [(k if k in params else f"{k}.weight") for k in sparsity]
    twice = sorted({k for k in named if named.count(k) > 1})
    if twice:  # 'fc1' and 'fc1.weight': one of the two was used
        raise ValueError(f"Per-layer sparsity names {', '.join(twice)} twice (as 'fc1' and 'fc1.weight'?).")
    targets = {(k if k in params else f"{k}.weight"): float(v) for k, v in sparsity.items()}
    unknown = sorted(k for k in targets if k not in params)
    if unknown:
        raise ValueError(f"Per-layer sparsity names no prunable layer: {', '.join(unknown)} "
                         f"(has {', '.join(n.removesuffix('.weight') for n in params)}).")
    name = "magnitude" if strategy == "global_magnitude" else strategy
    layered = get_strategy(name, scope="layer", seed=seed)
    masks = prune(model, layered, 0.0, batch=batch).masks
    for level in sorted(set(targets.values())):
        cut = prune(model, layered, level, batch=batch).masks
        masks.update({n: cut[n] for n, s in targets.items() if s == level})
    return masks


def compress(
    model: nn.Module,
    dataset: Dataset,
    *,
    sparsity: Sparsity = 0.9,
    strategy: str = "global_magnitude",
    bits: Bits = DEFAULT_BITS,
    method: str = "kmeans",
    finetune_epochs: int = 10,
    qat_epochs: int = 5,
    config: TrainConfig | None = None,
    qat_lr: float | None = None,
    per_channel: bool = False,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    stop=None,
) -> CompressionResult:
    """Run Deep Compression on a copy of ``model`` and measure every stage (see the module docstring).

    Args:
        model: the trained dense model (not modified).
        dataset: its dataset; training uses the train split, every number the test split.
        sparsity: one target (with ``strategy``'s scope) or per layer (``PAPER_SPARSITY``).
        strategy: a pruning strategy name.
        bits: an int, or per layer / kind (``{"conv": 8, "fc": 5}``, see ``qat.layer_bits``).
        method: the quantizer (``kmeans`` is the paper's weight sharing).
        finetune_epochs, qat_epochs: retraining after pruning, codebook training after quantizing.
        config: lr, batch size, optimizer and device of both trainings (its ``epochs`` is ignored; its
            ``zero_threshold`` applies to the retraining only);
            default ``finetune_config()`` (Adam at 1e-4).
        qat_lr: learning rate of the codebook training (default: ``config.lr``).
        per_channel: per-channel levels (uniform methods).
        seed: seeds the strategy and the shuffles.
        progress: called with the finished fraction in [0, 1].
        stop: checked every training step; a stopped run still finishes the cheap stages.

    Raises:
        ValueError: bad sparsity, strategy, bits or method, or a model whose architecture the compressed
            checkpoint cannot record (not the registry's MLP or LeNet5), before any training.
        TrainingDiverged: a retraining diverged.
    """
    for epochs in (finetune_epochs, qat_epochs):  # nan passed the old `< 0` check and reached the settings
        if not is_whole(epochs) or epochs < 0:
            raise ValueError(f"finetune_epochs and qat_epochs must be whole numbers >= 0, got {epochs!r}.")
    quantizers_for(model, method, bits, per_channel)  # bad method / bits / layer names fail before any training
    if not architecture_metadata(model):  # the last stage saves and reloads it: said after all the training before
        raise ValueError(f"Deep Compression ends in a compressed checkpoint that records the architecture, which it "
                         f"can for the registry's MLP and LeNet5, not a {type(model).__name__}.")
    get_one_shot_strategy(strategy, "Deep Compression (prune once, then retrain)", seed=seed)
    base = config or finetune_config(seed=seed)
    total = finetune_epochs + qat_epochs + 2
    report = _Progress(progress, total)

    dense_eval = evaluate_dataset(model, dataset, device=base.device)
    masks = prune_masks(model, dataset, sparsity, strategy, seed)
    validate_masks(model, masks)
    pruned = apply_masks(copy.deepcopy(model), masks)
    pruned_eval = evaluate_dataset(pruned, dataset, device=base.device)
    report.step(1)

    stopped = False
    tuned = pruned
    if finetune_epochs > 0:
        run = train(pruned, dataset, _with_epochs(base, finetune_epochs), masks=masks,
                    progress=report.part(finetune_epochs), stop=stop)
        tuned, stopped = run.model.cpu().eval(), run.stopped
    tuned_eval = evaluate_dataset(tuned, dataset, device=base.device)

    ptq = quantize_layers(tuned, method, bits, per_channel=per_channel, masks=masks)
    ptq_eval = evaluate_dataset(ptq.model, dataset, device=base.device)
    report.step(1)
    # the grid decides the zeros of codebook training (quantize_aware_finetune takes no zero_threshold)
    qat_config = replace(_with_epochs(base, qat_epochs if not stopped else 0), zero_threshold=0.0)
    if qat_lr is not None:
        qat_config = replace(qat_config, lr=qat_lr)
    qat = quantize_aware_finetune(tuned, dataset, method, bits, qat_config,
                                  per_channel=per_channel, masks=masks, progress=report.part(qat_epochs), stop=stop)
    qat_eval = evaluate_dataset(qat.model, dataset, device=base.device)

    blob = save_compressed(qat)
    loaded = load_compressed(blob)
    huff_eval = evaluate_dataset(loaded, dataset, device=base.device)

    dense_size = size_table(model)
    sizes_tuned = size_table(tuned, masks)
    sizes_ptq = size_table(ptq.model, quantized=ptq)  # nonzeros of the quantized weights, as for QAT
    sizes_qat = size_table(qat.model, quantized=qat)
    dense_bytes = _total(dense_size, "dense_fp32_bytes")
    rows = [
        ("dense", dense_eval.accuracy, dense_bytes, "fp32", dense_size),
        ("pruned", pruned_eval.accuracy, _total(size_table(pruned, masks), "sparse_csr_bytes"), "CSR fp32",
         size_table(pruned, masks)),
        ("pruned+finetuned", tuned_eval.accuracy, _total(sizes_tuned, "sparse_csr_bytes"), "CSR fp32", sizes_tuned),
        ("quantized", ptq_eval.accuracy, _total(sizes_ptq, "quantized_bytes"), "codes + relative index", sizes_ptq),
        ("quantized+QAT", qat_eval.accuracy, _total(sizes_qat, "quantized_bytes"), "codes + relative index",
         sizes_qat),
        ("huffman", huff_eval.accuracy, _total(sizes_qat, "huffman_bytes"), "Huffman codes + index", sizes_qat),
    ]
    stages = pd.DataFrame([
        {"stage": stage, "accuracy": acc, "error_pct": 100.0 * (1.0 - acc), "bytes": int(nbytes),
         "ratio_vs_dense": dense_bytes / nbytes, "format": fmt,
         "nonzeros": _total(table, "nonzeros"), "sparsity": 1.0 - _total(table, "nonzeros") / _total(table, "weights")}
        for stage, acc, nbytes, fmt, table in rows
    ], columns=STAGE_COLUMNS)
    stages.attrs["checkpoint_bytes"] = len(blob)
    stages.attrs["stopped"] = stopped
    report.step(1)
    settings = {"sparsity": dict(sparsity) if isinstance(sparsity, Mapping) else float(sparsity),
                "strategy": strategy, "bits": layer_bits(model, bits), "method": method,
                "finetune_epochs": finetune_epochs, "qat_epochs": qat_epochs, "lr": base.lr,
                "qat_lr": qat_config.lr,
                "batch_size": base.batch_size, "optimizer": base.optimizer, "per_channel": per_channel}
    return CompressionResult(stages, sizes_qat, tuned, masks, qat, blob, stopped, settings)


def deep_compression(model: nn.Module, dataset: Dataset, **kwargs) -> pd.DataFrame:
    """The stage table of ``compress`` (same arguments): stage, accuracy, error_pct, bytes, ratio_vs_dense, ..."""
    return compress(model, dataset, **kwargs).stages


def _total(table: pd.DataFrame, column: str) -> int:
    return int(table.loc[table["layer"] == "total", column].iloc[0])


def _with_epochs(config: TrainConfig, epochs: int) -> TrainConfig:
    return replace(config, epochs=epochs)


class _Progress:
    """Maps stage-local fractions onto the whole run's [0, 1]."""

    def __init__(self, callback: Callable[[float], None] | None, total: float):
        self.callback, self.total, self.done = callback, max(total, 1.0), 0.0

    def step(self, units: float) -> None:
        self.done += units
        if self.callback is not None:
            self.callback(min(1.0, self.done / self.total))

    def part(self, units: float) -> Callable[[float], None] | None:
        if self.callback is None or units <= 0:
            return None
        start = self.done
        self.done += units

        def inner(fraction: float) -> None:
            self.callback(min(1.0, (start + fraction * units) / self.total))

        return inner
