"""The one training loop: masks, proximal penalties, hooks, progress, a stop flag, divergence.

``train`` never modifies the model it is given: it trains a copy and returns it.
Masked weights stay exactly zero (masks are re-applied after every step).
Everything that changes training from the outside plugs in as a ``TrainHook``
(per step, per epoch): pruning schedules (AGP), dynamic sparse training (SET,
RigL), IMP's rewinding and the lottery rounds all train here; so do dropout and
DropConnect (``TrainConfig.dropout`` / ``.dropconnect`` add the hooks of
``regularization_hooks.py``) and penalties on activations (``TrainHook.loss_term``).
Hooks undo what they attach in ``on_end``, called even when training raises. One
history type, ``EpochStats``, one row per epoch.

A run that diverges (non-finite loss, a loss ``DIVERGENCE_FACTOR`` times its
reference, accuracy collapsing to chance, non-finite weights: the rules and
constants are in ``divergence.py``) raises ``TrainingDiverged`` with the epoch,
the reason and the result restored to its last good state.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset, as_tensor, check_train_fraction, train_subset
from .devices import resolve_device
from .divergence import DIVERGENCE_FACTOR, DivergenceMonitor, TrainingDiverged, chance_accuracy  # noqa: F401 (re-exported)
from .masks import Masks, apply_masks, masks_from_zeros, require_finite, sparsity, to_device
from .regularizers import REGULARIZERS, Regularizer, get_regularizer
from .whole_numbers import is_whole

MAX_LR = 1e30  # learning rates near float32's range (4e37) overflowed inside torch's optimizers: a traceback


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
    seed: int = 0  # seeds the shuffling order (and the dropout / DropConnect masks)
    device: str = "auto"
    dropout: float = 0.0  # rate p of dropout on hidden activations (Srivastava et al. 2014); 0 = off
    dropconnect: float = 0.0  # rate p of DropConnect on prunable weights (Wan et al. 2013); 0 = off
    train_fraction: float = 1.0  # train on this stratified share of the training split (data.train_subset, seeded)
    eval_train: bool = False  # after each epoch also evaluate the training split in eval mode (the overfitting gap)

    def __post_init__(self):
        whole = [name for name in ("epochs", "batch_size")
                 if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int)]
        if whole:  # 2.5 epochs failed inside range(), True counted as 1 (an audit)
            raise ValueError(f"{' and '.join(whole)} must be whole numbers, got "
                             f"{', '.join(repr(getattr(self, n)) for n in whole)}.")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1.")
        if not (math.isfinite(self.lr) and 0 < self.lr <= MAX_LR):  # larger ones overflow in torch's optimizers
            raise ValueError(f"Learning rate must be a positive number up to {MAX_LR:g}, got {self.lr!r}.")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; choose adam or sgd.")
        # one clear message here rather than a raw one from inside torch, or a penalty silently left out (an audit)
        for name in ("weight_decay", "strength", "zero_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if isinstance(self.momentum, bool) or not isinstance(self.momentum, (int, float)) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        if self.regularizer is not None and self.regularizer not in REGULARIZERS:
            raise ValueError(f"Unknown regularizer {self.regularizer!r}; choose one of {', '.join(REGULARIZERS)}.")
        for name in ("dropout", "dropconnect"):
            rate = getattr(self, name)
            if not (isinstance(rate, (int, float)) and 0.0 <= rate < 1.0):
                raise ValueError(f"{name} rate must be in [0, 1), got {rate!r}.")
        check_train_fraction(self.train_fraction)


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # fraction in [0, 1]
    loss: float  # mean cross-entropy
    count: int


@dataclass(frozen=True)
class EpochStats:
    """One epoch's numbers.

    ``train_accuracy`` / ``train_loss`` are running values over the epoch's batches, in
    training mode (dropout / DropConnect on, weights still moving): with dropout they
    understate what the network does on its training data. ``train_eval_accuracy`` /
    ``train_eval_loss`` (``TrainConfig.eval_train``; None otherwise) evaluate the training
    split actually used at the end of the epoch in eval mode, like the test numbers: the
    honest side of the overfitting gap ``train_eval_accuracy - test_accuracy``.
    """

    epoch: int  # 1-based
    train_loss: float  # mean data loss over the epoch's batches
    penalty: float  # regulariser value at the end of the epoch
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    sparsity: float  # fraction of exact zeros over prunable weights
    seconds: float
    train_eval_accuracy: float | None = None  # training split in eval mode (TrainConfig.eval_train), else None
    train_eval_loss: float | None = None


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


StopFlag = Callable[[], bool]


def is_stopped(stop: StopFlag | object | None) -> bool:
    """True when ``stop`` (a callable returning True, or an object with ``is_set()``) asks to stop."""
    if stop is None:
        return False
    if hasattr(stop, "is_set"):
        return bool(stop.is_set())
    return bool(stop())


@dataclass
class TrainState:
    """What a ``TrainHook`` sees: the run's live objects and where it stands.

    Attributes:
        model: the copy being trained (on the training device).
        masks: the masks in force (None: no masks); a hook changes them by returning new ones.
        optimizer: the run's optimizer.
        config: the run's ``TrainConfig``.
        epoch: the current epoch, 1-based (0 in ``on_start``).
        step: optimizer steps taken so far (1 in the first ``after_step``).
        total_steps: steps the whole run takes if not stopped.
        batch: the current ``(inputs, labels)`` (None in ``on_start``).
    """

    model: nn.Module
    masks: Masks | None
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    batch: tuple[torch.Tensor, torch.Tensor] | None = None


class TrainHook:
    """Plugs into ``train``; every method is a no-op unless overridden.

    Order within a step: ``before_step`` (batch chosen, before the forward pass), forward,
    ``loss_term`` (extra terms added to the loss), backward, optimizer step, regulariser
    prox, masks re-applied, ``after_step``. ``on_end`` runs once when ``train`` leaves,
    also on divergence, a stop or any exception: hooks that attach things to the model
    (forward hooks for dropout, DropConnect, activation penalties) remove them there.
    Pruning schedules, dynamic sparse training and IMP's rewinding are hooks.
    """

    schedules_masks = False  # True: ``after_step`` sets the masks on a schedule with an exact budget (AGP, SET, RigL)

    def on_start(self, state: TrainState) -> None:
        """Once, after the masks are applied and before the first step."""

    def before_step(self, state: TrainState) -> None:
        """Before the forward pass of every step; ``state.batch`` is the batch about to be used."""

    def loss_term(self, state: TrainState) -> torch.Tensor | None:
        """After the forward pass: a scalar added to the loss before backward (e.g. an activation penalty).

        The reported ``train_loss`` and the divergence rules see the data loss only.
        """
        return None

    def loss_setting(self) -> tuple[str, float] | None:
        """The name and value of what scales ``loss_term`` (``("balance weight", 0.1)``), or None: a run that
        diverges names it beside the learning rate, since too large a value diverges just as a too large rate does."""
        return None

    def after_step(self, state: TrainState) -> Masks | None:
        """After every optimizer step; new masks returned here are applied at once (pruned weights become 0)."""
        return None

    def on_epoch_end(self, state: TrainState, stats: EpochStats) -> None:
        """After every finished epoch, with its numbers."""

    def on_end(self, state: TrainState) -> None:
        """Once, when ``train`` leaves (normally or by an exception); undo what ``on_start`` attached."""


def summed_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """``F.cross_entropy(logits, y, reduction="sum")`` as ``logsumexp - logit of the label``.

    The same number (tested to 1e-6) about 3x faster on a (1000, 10) CPU batch in this torch build,
    whose ``log_softmax`` over a short last dimension is slow (~0.18 ms of a 2 ms slider step).
    """
    bad = logits.dim() != 2 or y.dim() != 1 or (y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]))
    if bad:  # torch's own checks and messages (an IndexError for a label out of range)
        return float(F.cross_entropy(logits, y, reduction="sum"))
    return float((torch.logsumexp(logits, 1) - logits.gather(1, y.unsqueeze(1)).squeeze(1)).sum())


def label_stats(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """(summed cross-entropy, number of rows whose argmax is the label) of logits (N, C) and labels (N,).

    One native pass when this process has the backend's kernel loaded already (a float32 CPU batch; it is
    never built or loaded for this), else ``summed_cross_entropy`` and torch's argmax.
    """
    kernels = sys.modules.get("sparsity_viz.backend.kernels")
    native = kernels.loaded() if kernels is not None else None
    if (native is not None and logits.dim() == 2 and logits.dtype == torch.float32 and logits.device.type == "cpu"
            and y.dim() == 1 and y.dtype == torch.int64 and y.device.type == "cpu"):
        loss, hits = native.label_stats(logits, y)
        return float(loss), int(hits)
    return summed_cross_entropy(logits, y), int((logits.argmax(1) == y).sum())


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` when it is a whole number >= 1, else ``ValueError``."""
    if not is_whole(batch_size) or batch_size < 1:
        raise ValueError(f"The batch size must be a whole number >= 1, got {batch_size!r}.")
    return int(batch_size)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048, device: str = "auto") -> Evaluation:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``; restores the model's mode."""
    check_batch_size(batch_size)  # -1 read no batch and reported accuracy 0 and loss 0 (an audit)
    x, y = as_inputs(model, x), as_labels(y)
    if len(x) != len(y):
        raise ValueError(f"evaluate needs one label per sample: {len(x)} inputs, {len(y)} labels.")
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    try:
        for i in range(0, len(y), batch_size):
            xb = x[i : i + batch_size].to(dev)
            yb = y[i : i + batch_size].to(dev)
            logits = forward_checked(model, xb) if i == 0 else model(xb)  # (B, classes)
            loss, hits = label_stats(logits, yb)
            loss_sum += loss
            correct += hits
    finally:
        model.train(was_training)
    n = len(y)
    return Evaluation(accuracy=correct / n if n else float("nan"), loss=loss_sum / n if n else float("nan"), count=n)


def as_inputs(model: nn.Module, x) -> torch.Tensor:
    """``x`` as a tensor (numpy arrays welcome); floating inputs in the model's floating dtype, so a
    ``model.double()`` takes the float32 data it was built from (torch's "mat1 and mat2 must have the
    same dtype" from deep inside the model had been the answer, an audit)."""
    x = as_tensor(x)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return x.to(dtype) if dtype is not None and x.is_floating_point() and x.dtype != dtype else x


def as_labels(y) -> torch.Tensor:
    """``y`` as an int64 tensor of class labels; ``ValueError`` for float, bool or multi-dimensional labels."""
    y = as_tensor(y)
    if y.dim() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be one whole-number class per sample (a 1-D integer tensor), got {y.dtype} "
                         f"of shape {tuple(y.shape)}.")
    return y.long()


def forward_checked(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    """``model(xb)``; a model that cannot take inputs of this shape is a ``ValueError`` that says so."""
    try:
        return model(xb)
    except RuntimeError as exc:
        if "shape" not in str(exc) and "size" not in str(exc) and "channels" not in str(exc):
            raise
        first = str(exc).strip().splitlines()[0][:200]
        raise ValueError(f"the model does not take inputs of shape {tuple(xb.shape[1:])} (one sample): {first}. "
                         "Is this the dataset the model was built for?") from None


def evaluate_dataset(model: nn.Module, dataset: Dataset, split: str = "test", device: str = "auto") -> Evaluation:
    """``evaluate`` on the test (default) or train split of a Dataset."""
    if split not in ("test", "train"):
        raise ValueError("split must be 'test' or 'train'.")
    x, y = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_train, dataset.y_train)
    return evaluate(model, x, y, device=device)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``config`` names (Adam or SGD with momentum) over all of ``model``'s parameters."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def prox_step_sizes(optimizer: torch.optim.Optimizer) -> Callable[[torch.Tensor], float | torch.Tensor]:
    """Each parameter's step in the optimizer's last update, for a proximal step (``regularizers``): SGD's ``lr``;
    Adam's ``lr / (sqrt(v_hat) + eps)`` per element, ``v_hat`` its bias-corrected second moment."""
    groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}

    def step(param: torch.Tensor) -> float | torch.Tensor:
        group = groups[id(param)]
        state = optimizer.state.get(param, {})
        if not isinstance(optimizer, torch.optim.Adam) or "exp_avg_sq" not in state:
            return group["lr"]
        beta2, t = group["betas"][1], float(state["step"])
        v_hat = state["exp_avg_sq"] / (1.0 - beta2**t)
        return group["lr"] / (v_hat.sqrt() + group["eps"])

    return step


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
    hooks: Sequence[TrainHook] = (),
    callback: Callable[[EpochStats], None] | None = None,
    progress: Callable[[float], None] | None = None,
    stop: StopFlag | object | None = None,
) -> TrainResult:
    """Train a copy of ``model`` on ``dataset``; return it with its per-epoch history.

    Args:
        model: left untouched; a deep copy is trained.
        dataset: train split for steps (``config.train_fraction`` of it, see ``data.train_subset``),
            test split for the per-epoch numbers.
        config: hyperparameters (see ``TrainConfig``).
        masks: weights where the mask is False stay exactly 0.
        regularizer: overrides ``config.regularizer`` / ``config.strength``; its proximal
            step follows every optimizer step, before the masks are re-applied.
        hooks: ``TrainHook`` objects called in order at the start, around every step,
            after every epoch and at the end; ``after_step`` may return new masks.
            ``config.dropout`` / ``config.dropconnect`` add their hooks before these.
        callback: called after every epoch with its ``EpochStats``.
        progress: called with the finished fraction of all steps, in [0, 1].
        stop: a callable returning True, or an object with ``is_set()``, checked every step.

    Raises:
        TrainingDiverged: a rule of ``divergence.py`` tripped; ``.result`` holds the last
            good state, ``.epoch`` and ``.reason`` say when and why.
    """
    require_finite(model, "training")  # NaN weights were returned at 0 epochs, or blamed on the learning rate (an audit)
    dev = resolve_device(config.device)
    dataset = train_subset(dataset, config.train_fraction, seed=config.seed)  # the same object when 1.0
    work = copy.deepcopy(model).to(dev)
    if regularizer is None and config.regularizer and config.strength > 0:
        regularizer = get_regularizer(config.regularizer, config.strength)
    masks = to_device(masks, dev) if masks is not None else None
    if masks is not None:
        apply_masks(work, masks)
    x, y = as_inputs(work, dataset.x_train).to(dev), dataset.y_train.to(dev)
    if config.epochs > 0 and len(y) == 0:
        raise ValueError(f"{dataset.name} has no training samples to train on.")
    steps_per_epoch = max(1, math.ceil(len(y) / config.batch_size))
    state = TrainState(work, masks, make_optimizer(work, config), config,
                       total_steps=steps_per_epoch * max(config.epochs, 1))
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(model=work, masks=masks)
    good = (copy.deepcopy(work.state_dict()), masks)
    hooks = [*_config_hooks(config), *hooks]  # dropout / DropConnect from the config come first
    if config.zero_threshold > 0 and any(h.schedules_masks for h in hooks):  # its zeros joined the masks unrecorded:
        raise ValueError("zero_threshold prunes weights the mask schedule does not count (SET at 80 % ended at 88 % "
                         "with a history saying 80 %): a schedule keeps its own exact budget, so use one or the other.")
    started: list[TrainHook] = []
    try:
        for hook in hooks:
            started.append(hook)
            hook.on_start(state)
        # the reference accuracy is the model as training starts, after hooks set it up (e.g. quantized weights)
        monitor = _monitor(work, dataset, dev) if config.epochs > 0 else None
        prox_steps = prox_step_sizes(state.optimizer)  # built once; it reads the optimizer's state at each call
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            state.epoch = epoch
            work.train()
            order = torch.randperm(len(y), generator=generator).to(dev)
            loss_sum, correct, seen = 0.0, 0, 0
            for i in range(0, len(y), config.batch_size):
                if is_stopped(stop):
                    result.stopped = True
                    break
                idx = order[i : i + config.batch_size]
                xb, yb = x[idx], y[idx]
                state.batch = (xb, yb)
                for hook in hooks:
                    hook.before_step(state)
                logits = work(xb)  # (B, classes)
                loss = F.cross_entropy(logits, yb)
                value = float(loss.detach())
                for hook in hooks:
                    term = hook.loss_term(state)
                    if term is not None:
                        loss = loss + term
                verdict = monitor.check_loss(value, logits)
                if verdict is not None:
                    raise _diverged(result, good, state, verdict, regularizer, hooks)
                state.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                state.optimizer.step()
                if regularizer is not None:
                    regularizer.prox(work, prox_steps)
                if state.masks is not None:
                    apply_masks(work, state.masks, check=False)  # checked when they came in
                state.step += 1
                for hook in hooks:
                    new = hook.after_step(state)
                    if new is not None:
                        state.masks = to_device(new, dev)
                        apply_masks(work, state.masks)
                        monitor.new_masks()
                loss_sum += value * len(yb)
                correct += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
                if progress is not None:
                    progress(min(1.0, state.step / state.total_steps))
            if seen == 0:
                break
            if config.zero_threshold > 0:
                threshold_zeros(work, config.zero_threshold)
                state.masks = _final_masks(work, state.masks)
            if not all(torch.isfinite(p).all() for p in work.parameters()):
                raise _diverged(result, good, state, ("non-finite weights", "a weight became NaN or infinite"),
                                regularizer, hooks)
            test = evaluate(work, dataset.x_test, dataset.y_test, device=str(dev))
            verdict = monitor.check_accuracy(test.accuracy)
            if verdict is not None:
                raise _diverged(result, good, state, verdict, regularizer, hooks)
            fit = evaluate(work, dataset.x_train, dataset.y_train, device=str(dev)) if config.eval_train else None
            stats = EpochStats(
                epoch=epoch,
                train_loss=loss_sum / seen,
                penalty=_penalty_value(work, regularizer),
                train_accuracy=correct / seen,
                test_loss=test.loss,
                test_accuracy=test.accuracy,
                sparsity=sparsity(masks_from_zeros(work)),
                seconds=time.perf_counter() - start,
                train_eval_accuracy=fit.accuracy if fit else None,
                train_eval_loss=fit.loss if fit else None,
            )
            result.history.append(stats)
            good = (copy.deepcopy(work.state_dict()), state.masks)
            for hook in hooks:
                hook.on_epoch_end(state, stats)
            if callback is not None:
                callback(stats)
            if result.stopped:
                break
    finally:
        for hook in started:
            hook.on_end(state)
    work.eval()
    result.masks = _final_masks(work, state.masks)
    return result


def _config_hooks(config: TrainConfig) -> list[TrainHook]:
    """The hooks ``config`` asks for itself: dropout and DropConnect (``regularization_hooks.py``)."""
    from .regularization_hooks import config_hooks  # imported here: that module builds on TrainHook

    return config_hooks(config)


def _monitor(model: nn.Module, dataset: Dataset, dev: torch.device) -> DivergenceMonitor:
    """The divergence rules for one run, with the model's test accuracy before training as the reference."""
    start = evaluate(model, dataset.x_test, dataset.y_test, device=str(dev))
    return DivergenceMonitor(start.accuracy, chance_accuracy(dataset.y_test))


def _diverged(result: TrainResult, good: tuple[dict, Masks | None], state: TrainState, verdict: tuple[str, str],
              regularizer: Regularizer | None, hooks: Sequence[TrainHook] = ()) -> TrainingDiverged:
    """Restore the last good state into ``result`` and build the error (one line), naming the learning rate and
    every strength that scales a term of the loss (the regulariser's, the hooks' ``loss_setting``)."""
    reason, detail = verdict
    state.model.load_state_dict(good[0])
    state.masks = good[1]
    state.model.eval()
    result.masks = _final_masks(state.model, state.masks)
    where = f"the end of epoch {len(result.history)}" if result.history else "its state before training"
    settings = [setting for hook in hooks if (setting := hook.loss_setting()) is not None]
    knobs = ["learning rate", *(["penalty strength"] if regularizer is not None else []), *(n for n, _ in settings)]
    message = (f"Training diverged in epoch {state.epoch}: {reason} ({detail}; learning rate "
               f"{state.config.lr:g}{_reg_text(regularizer)}{''.join(f', {n} {v:g}' for n, v in settings)}). "
               f"The model was restored to {where}; try a smaller {_either(knobs)}.")
    return TrainingDiverged(message, result, epoch=state.epoch, reason=reason)


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


def _either(words: list[str]) -> str:
    """``["a"]`` -> "a", ``["a", "b", "c"]`` -> "a, b or c"."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _reg_text(regularizer: Regularizer | None) -> str:
    return f", {regularizer.name} strength {regularizer.strength:g}" if regularizer is not None else ""
