"""Training and evaluation with masks, proximal penalties, progress callbacks and a stop flag.

``train`` never modifies the model it is given: it trains a copy and returns it.
Masked weights stay exactly zero (masks are re-applied after every step). A
NaN or infinite loss stops the run with ``TrainingDiverged``, which carries the
result at the last good state (the end of the last finished epoch).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset
from .devices import resolve_device
from .masks import Masks, apply_masks, masks_from_zeros, sparsity, to_device
from .regularizers import Regularizer, get_regularizer


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Frozen: it doubles as a cache key in the app."""

    epochs: int = 10
    lr: float = 1e-3  # Adam's usual default; fine-tuning after pruning uses ~1/10 of the original lr (Han et al.)
    batch_size: int = 64  # small enough for many steps per epoch on 800-4,000 samples
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    regularizer: str | None = None  # "l1", "group_lasso", "l2" (see regularizers.py)
    strength: float = 0.0  # lambda of the regulariser
    zero_threshold: float = 0.0  # after each epoch, |w| below this becomes exactly 0 (and stays 0)
    seed: int = 0  # seeds the shuffling order
    device: str = "auto"

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"Learning rate must be a positive number, got {self.lr!r}.")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; choose adam or sgd.")


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # fraction in [0, 1]
    loss: float  # mean cross-entropy
    count: int


@dataclass(frozen=True)
class EpochStats:
    epoch: int  # 1-based
    train_loss: float  # mean data loss over the epoch's batches
    penalty: float  # regulariser value at the end of the epoch
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    sparsity: float  # fraction of exact zeros over prunable weights
    seconds: float


@dataclass
class TrainResult:
    model: nn.Module
    history: list[EpochStats] = field(default_factory=list)
    masks: Masks | None = None  # masks in force at the end (incl. zeros made by L1 / thresholding)
    stopped: bool = False  # stopped early by the stop flag

    def history_frame(self):
        """The history as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        return pd.DataFrame([asdict(h) for h in self.history])


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; ``result`` holds the model at its last good state."""

    def __init__(self, message: str, result: TrainResult):
        super().__init__(message)
        self.result = result


StopFlag = Callable[[], bool]


def _is_stopped(stop: StopFlag | object | None) -> bool:
    if stop is None:
        return False
    if hasattr(stop, "is_set"):
        return bool(stop.is_set())
    return bool(stop())


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048, device: str = "auto") -> Evaluation:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``; restores the model's mode."""
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    try:
        for i in range(0, len(y), batch_size):
            xb = x[i : i + batch_size].to(dev)
            yb = y[i : i + batch_size].to(dev)
            logits = model(xb)  # (B, classes)
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    n = len(y)
    return Evaluation(accuracy=correct / n if n else float("nan"), loss=loss_sum / n if n else float("nan"), count=n)


def evaluate_dataset(model: nn.Module, dataset: Dataset, split: str = "test", device: str = "auto") -> Evaluation:
    """``evaluate`` on the test (default) or train split of a Dataset."""
    if split not in ("test", "train"):
        raise ValueError("split must be 'test' or 'train'.")
    x, y = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_train, dataset.y_train)
    return evaluate(model, x, y, device=device)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


@torch.no_grad()
def threshold_zeros(model: nn.Module, threshold: float) -> int:
    """Set prunable weights with ``|w| < threshold`` to exactly zero in place; return how many changed."""
    changed = 0
    for p in masks_from_zeros(model).keys():
        param = model.get_parameter(p)
        small = (param.abs() < threshold) & (param != 0)
        changed += int(small.sum())
        param[small] = 0.0
    return changed


def train(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig = TrainConfig(),
    *,
    masks: Masks | None = None,
    regularizer: Regularizer | None = None,
    callback: Callable[[EpochStats], None] | None = None,
    progress: Callable[[float], None] | None = None,
    stop: StopFlag | object | None = None,
) -> TrainResult:
    """Train a copy of ``model`` on ``dataset``; return it with its per-epoch history.

    Args:
        model: left untouched; a deep copy is trained.
        dataset: train split for steps, test split for the per-epoch numbers.
        config: hyperparameters (see ``TrainConfig``).
        masks: weights where the mask is False stay exactly 0.
        regularizer: overrides ``config.regularizer`` / ``config.strength``.
        callback: called after every epoch with its ``EpochStats``.
        progress: called with the finished fraction of all steps, in [0, 1].
        stop: a callable returning True, or an object with ``is_set()``, checked every step.

    Raises:
        TrainingDiverged: the loss became NaN/inf; ``.result`` holds the last good model.
    """
    dev = resolve_device(config.device)
    work = copy.deepcopy(model).to(dev)
    if regularizer is None and config.regularizer and config.strength > 0:
        regularizer = get_regularizer(config.regularizer, config.strength)
    masks = to_device(masks, dev) if masks is not None else None
    if masks is not None:
        apply_masks(work, masks)
    x, y = dataset.x_train.to(dev), dataset.y_train.to(dev)
    optimizer = _optimizer(work, config)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = max(1, math.ceil(len(y) / config.batch_size))
    total_steps = steps_per_epoch * max(config.epochs, 1)
    result = TrainResult(model=work, masks=masks)
    good_state = copy.deepcopy(work.state_dict())
    step = 0
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        work.train()
        order = torch.randperm(len(y), generator=generator).to(dev)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(0, len(y), config.batch_size):
            if _is_stopped(stop):
                result.stopped = True
                break
            idx = order[i : i + config.batch_size]
            xb, yb = x[idx], y[idx]
            logits = work(xb)  # (B, classes)
            loss = F.cross_entropy(logits, yb)
            if not torch.isfinite(loss):
                work.load_state_dict(good_state)
                result.masks = _final_masks(work, masks)
                raise TrainingDiverged(
                    f"Training diverged in epoch {epoch}: the loss became {float(loss.detach())} "
                    f"(learning rate {config.lr:g}{_reg_text(regularizer)}). "
                    "The model was restored to the end of the last finished epoch; try a smaller learning rate or strength.",
                    result,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if regularizer is not None:
                regularizer.prox(work, config.lr)
            if masks is not None:
                apply_masks(work, masks)
            loss_sum += float(loss.detach()) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(yb)
            step += 1
            if progress is not None:
                progress(min(1.0, step / total_steps))
        if seen == 0:
            break
        if config.zero_threshold > 0:
            threshold_zeros(work, config.zero_threshold)
            masks = _final_masks(work, masks)
        if not all(torch.isfinite(p).all() for p in work.parameters()):
            work.load_state_dict(good_state)
            result.masks = _final_masks(work, masks)
            raise TrainingDiverged(
                f"Training diverged in epoch {epoch}: weights became NaN or infinite. "
                "The model was restored to the end of the last finished epoch.",
                result,
            )
        test = evaluate(work, dataset.x_test, dataset.y_test, device=str(dev))
        stats = EpochStats(
            epoch=epoch,
            train_loss=loss_sum / seen,
            penalty=_penalty_value(work, regularizer),
            train_accuracy=correct / seen,
            test_loss=test.loss,
            test_accuracy=test.accuracy,
            sparsity=sparsity(masks_from_zeros(work)),
            seconds=time.perf_counter() - start,
        )
        result.history.append(stats)
        good_state = copy.deepcopy(work.state_dict())
        if callback is not None:
            callback(stats)
        if result.stopped:
            break
    work.eval()
    result.masks = _final_masks(work, masks)
    return result


def _final_masks(model: nn.Module, masks: Masks | None) -> Masks:
    """Masks in force: the given ones AND the exact zeros the weights now have."""
    zeros = masks_from_zeros(model)
    if masks is None:
        return zeros
    return {n: zeros[n] & masks[n] if n in masks else zeros[n] for n in zeros} | {
        n: m for n, m in masks.items() if n not in zeros
    }


@torch.no_grad()
def _penalty_value(model: nn.Module, regularizer: Regularizer | None) -> float:
    return float(regularizer.penalty(model)) if regularizer is not None else 0.0


def _reg_text(regularizer: Regularizer | None) -> str:
    return f", {regularizer.name} strength {regularizer.strength:g}" if regularizer is not None else ""
