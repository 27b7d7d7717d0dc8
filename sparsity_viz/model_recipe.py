"""How a current model was made from the dense one, as a seeded, deterministic recipe a link can carry.

A ``ModelRecipe`` is an optional prune step (a ``PruneConfig``, always applied to the
dense model) followed by training steps (a ``TrainConfig`` and where it starts: the
dense model, or the current model with its pruned weights held at zero). Training is
seeded (``TrainConfig.seed``: shuffling order, dropout and DropConnect masks), so
``rebuild`` on the same dense weights, data and device gives the same weights again.

``to_text`` / ``from_text`` write it as one URL parameter, e.g.
``prune:strategy=magnitude,scope=layer,sparsity=90,seed=0;train:start=current,epochs=2,lr=0.0001``;
``from_text`` raises ``ValueError`` with a readable reason on anything it does not know.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from torch import nn

from .data import Dataset, data_batch
from .masks import Masks, full_masks, masked_copy, masks_from_zeros
from .pruning import STRATEGIES, is_scheduled, one_shot_strategy_names, prune, wants_batch
from .pruning.base import checked_seed
from .regularizers import REGULARIZERS
from .session import PruneConfig
from .training import TrainConfig, train

MAX_STEPS = 6  # training steps a link may ask for (the app's history is short anyway)
MAX_EPOCHS = 200  # per step: a link must not be able to keep the server busy for an hour
BATCH_RANGE = (16, 4096)  # the app trains at 32-64; a link of batch 1 would cost 64x the steps per epoch
COST_BATCH = 32  # the app's smallest training batch: a recipe's epochs are counted at it (smaller ones cost more)
MAX_TOTAL_EPOCHS = 400  # all steps together, so counted: LeNet-5 at batch 64 takes ~3.5 s an epoch here (<= 25 min)
RANGES = {"lr": (0.0, 1e4), "weight_decay": (0.0, 1e3), "strength": (0.0, 1e3), "zero_threshold": (0.0, 1e3)}  # the pages' own
STARTS = ("dense", "current")
# TrainConfig fields a recipe carries (device and eval_train do not change the weights)
TRAIN_FIELDS = ("epochs", "lr", "batch_size", "optimizer", "momentum", "weight_decay", "regularizer", "strength",
                "zero_threshold", "seed", "dropout", "dropconnect", "train_fraction")
_TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


@dataclass(frozen=True)
class TrainStep:
    """One training run: ``config`` from ``start`` ("dense": the dense model, no masks; "current": the model so far,
    its pruned weights held at zero)."""

    config: TrainConfig
    start: str = "current"

    def __post_init__(self):
        if self.start not in STARTS:
            raise ValueError(f"A training step starts from 'dense' or 'current', not {self.start!r}.")
        # the recipe is a cache key: the device and eval_train never change the weights
        object.__setattr__(self, "config", replace(self.config, device="auto", eval_train=False))

    def describe(self) -> str:
        c = self.config
        epochs = f"{c.epochs} epoch{'s' if c.epochs != 1 else ''}"
        parts = [f"{epochs} {c.optimizer.upper() if c.optimizer == 'sgd' else 'Adam'} lr {c.lr:g}"]
        if c.regularizer and c.strength > 0:
            parts.append(f"{c.regularizer} λ={c.strength:g}")
        if c.zero_threshold:
            parts.append(f"threshold {c.zero_threshold:g}")
        parts += [f"{name} {getattr(c, name):g}" for name in ("dropout", "dropconnect") if getattr(c, name)]
        if c.train_fraction < 1:
            parts.append(f"on {100 * c.train_fraction:g} % of the training split")
        if c.seed:
            parts.append(f"seed {c.seed}")
        return f"trained {', '.join(parts)}" + (" from the dense model" if self.start == "dense" else "")


@dataclass(frozen=True)
class ModelRecipe:
    """The dense model, optionally pruned by ``prune``, then trained by ``steps`` in order. Frozen: a cache key."""

    prune: PruneConfig | None = None
    steps: tuple[TrainStep, ...] = ()

    @property
    def trained(self) -> bool:
        """True when rebuilding it means training (a link then shows a progress bar)."""
        return bool(self.steps)

    @property
    def epochs(self) -> int:
        return sum(s.config.epochs for s in self.steps)

    def then_prune(self, cfg: PruneConfig) -> ModelRecipe:
        """Pruning always starts over from the dense model."""
        return ModelRecipe(prune=cfg)

    def then_train(self, step: TrainStep) -> ModelRecipe:
        """Training from the dense model starts over; from the current model it adds a step."""
        if step.start == "dense":
            return ModelRecipe(steps=(step,))
        return ModelRecipe(self.prune, (*self.steps, step))

    def describe(self) -> str:
        parts = [self.prune.describe()] if self.prune is not None else []
        parts += [s.describe() for s in self.steps]
        return " + ".join(parts) or "dense"

    def to_text(self) -> str:
        """The URL form ("" for the dense model)."""
        parts = []
        if self.prune is not None:
            p = self.prune
            parts.append(f"prune:strategy={p.strategy},scope={p.scope},sparsity={round(100 * p.sparsity, 4):g},"
                         f"seed={p.seed}")
        for s in self.steps:
            changed = [f"{name}={_num(getattr(s.config, name))}" for name in TRAIN_FIELDS
                       if getattr(s.config, name) != _TRAIN_DEFAULTS[name]]
            parts.append(",".join([f"train:start={s.start}", *changed]))
        return ";".join(parts)

    @classmethod
    def from_text(cls, text: str) -> ModelRecipe:
        """Read ``to_text``'s form back; ``ValueError`` saying what is wrong otherwise."""
        recipe = cls()
        parts = [p for p in str(text).strip().split(";") if p]
        if len(parts) > MAX_STEPS + 1:
            raise ValueError(f"A recipe has at most one prune step and {MAX_STEPS} training steps.")
        for i, part in enumerate(parts):
            kind, _, body = part.partition(":")
            if kind not in ("prune", "train"):  # named before its fields are read ('foo:bar' blamed the field)
                raise ValueError(f"Unknown recipe step {kind!r}; a step is 'prune:...' or 'train:...'.")
            values = _pairs(body)
            if kind == "prune":
                if i != 0:
                    raise ValueError("A recipe's prune step must come first.")
                recipe = recipe.then_prune(_prune_config(values))
            elif kind == "train":
                recipe = recipe.then_train(_train_step(values))
            else:
                raise ValueError(f"Unknown recipe step {kind!r}; a step is 'prune:...' or 'train:...'.")
        # six steps of 200 epochs at batch 16 kept one server busy for about 2 hours on LeNet-5 (an audit)
        cost = sum(s.config.epochs * max(1.0, COST_BATCH / s.config.batch_size) for s in recipe.steps)
        if cost > MAX_TOTAL_EPOCHS:
            raise ValueError(f"A link's training steps add up to {cost:,.0f} epochs at batch {COST_BATCH} (smaller "
                             f"batches count more); at most {MAX_TOTAL_EPOCHS}, so a link cannot keep the server busy "
                             "for an hour.")
        return recipe


@dataclass(frozen=True, eq=False)
class Rebuilt:
    """What ``rebuild`` made: the model, its masks (True = survives) and a description."""

    model: nn.Module
    masks: Masks
    origin: str


Progress = Callable[[float, str], None]


def rebuild(recipe: ModelRecipe, dense: nn.Module, dataset: Dataset, *, device: str = "auto",
            prune_masks: Callable[[PruneConfig], Masks] | None = None, progress: Progress | None = None,
            stop: Callable[[], bool] | None = None) -> Rebuilt | None:
    """Make ``recipe``'s model again from ``dense`` (never modified) through ``prune`` and ``train``.

    ``prune_masks(cfg)`` may supply the prune step's masks (the app's shared cache); otherwise
    ``pruning.prune`` computes them. ``progress(fraction, text)`` follows the training steps'
    epochs. Returns None when ``stop()`` turned True before the last step finished.
    Raises ``training.TrainingDiverged`` as ``train`` does.
    """
    model, masks = dense, full_masks(dense)  # as a fresh workbench: nothing pruned
    if recipe.prune is not None:
        cfg = recipe.prune
        if prune_masks is not None:
            masks = prune_masks(cfg)
        else:
            batch = data_batch(dataset, seed=cfg.seed) if wants_batch(STRATEGIES[cfg.strategy]) else None
            masks = prune(dense, cfg.strategy, cfg.sparsity, scope=cfg.scope, seed=cfg.seed, batch=batch).masks
        model = masked_copy(dense, masks)
    total, done = max(1, recipe.epochs), 0
    for i, step in enumerate(recipe.steps):
        text = f"step {i + 1} of {len(recipe.steps)}: {step.describe()}"

        def on_progress(fraction: float, _done: int = done, _epochs: int = step.config.epochs, _text: str = text):
            if progress is not None:
                progress((_done + fraction * _epochs) / total, _text)

        start_model, start_masks = (dense, None) if step.start == "dense" else (model, masks)
        result = train(start_model, dataset, replace(step.config, device=device), masks=start_masks,
                       progress=on_progress, stop=stop)
        if result.stopped:
            return None
        model = result.model.to("cpu").eval()
        masks = ({k: v.detach().to("cpu") for k, v in result.masks.items()} if result.masks
                 else masks_from_zeros(model))
        done += step.config.epochs
    if progress is not None:
        progress(1.0, "done")
    return Rebuilt(model=model, masks=masks, origin=recipe.describe())


# ---------------------------------------------------------------------------
# parsing


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)  # repr: the shortest text that reads back exactly


def _pairs(body: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in (b for b in body.split(",") if b):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq:
            raise ValueError(f"Recipe field {item!r} has no value (write name=value).")
        if not name:
            raise ValueError(f"Recipe field {item!r} has no name (write name=value).")
        if name in values:  # the last one won silently
            raise ValueError(f"Recipe field {name!r} is given twice in one step.")
        values[name] = value.strip()
    return values


def _number(name: str, text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"Recipe field {name}={text!r} is not a{'n integer' if kind is int else ' number'}.") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"Recipe field {name} must be a finite number, got {text!r}.")
    return value


def _prune_config(values: dict[str, str]) -> PruneConfig:
    unknown = set(values) - {"strategy", "scope", "sparsity", "seed"}
    if unknown:
        raise ValueError(f"Unknown prune field(s) {', '.join(sorted(unknown))}.")
    strategy = values.get("strategy", PruneConfig.strategy)
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown pruning strategy {strategy!r}.")
    if is_scheduled(strategy):  # its one-shot masks are plain magnitude's, made under its name (an audit)
        raise ValueError(f"{strategy} prunes while it trains, and a prune step prunes once; choose one of "
                         f"{', '.join(one_shot_strategy_names())}.")
    scopes = STRATEGIES[strategy].scopes
    scope = values.get("scope", scopes[0])
    if scope not in scopes:
        raise ValueError(f"{strategy} prunes {' or '.join(scopes)}-wise, not {scope!r}.")
    level = _number("sparsity", values.get("sparsity", "0"), float)
    if not 0 <= level <= 100:
        raise ValueError(f"Sparsity is a percentage in [0, 100], got {level:g}.")
    seed = checked_seed(_number("seed", values.get("seed", "0"), int))
    return PruneConfig(strategy=strategy, scope=scope, sparsity=round(level, 4) / 100, seed=seed)


def _train_step(values: dict[str, str]) -> TrainStep:
    start = values.pop("start", "current")
    unknown = set(values) - set(TRAIN_FIELDS)
    if unknown:
        raise ValueError(f"Unknown training field(s) {', '.join(sorted(unknown))}.")
    kwargs: dict[str, Any] = {}
    for name, text in values.items():
        default = _TRAIN_DEFAULTS[name]
        if name == "regularizer":
            if text not in (*REGULARIZERS, "none"):
                raise ValueError(f"Unknown regulariser {text!r}; choose one of {', '.join(REGULARIZERS)}.")
            kwargs[name] = None if text == "none" else text
        elif name == "optimizer":
            kwargs[name] = text
        else:
            kwargs[name] = _number(name, text, int if isinstance(default, int) else float)
    if not 0 < kwargs.get("epochs", 1) <= MAX_EPOCHS:
        raise ValueError(f"A training step of a link has 1 to {MAX_EPOCHS} epochs.")
    checked_seed(kwargs.get("seed", 0), "A training seed")
    for name, (low, high) in RANGES.items():  # the pages' ranges first: their message names the range
        value = kwargs.get(name, _TRAIN_DEFAULTS[name])
        if not low <= value <= high:
            raise ValueError(f"Recipe field {name} must be in [{low:g}, {high:g}], got {value:g}.")
    config = TrainConfig(**kwargs)  # checks lr, optimizer, rates, share
    if not BATCH_RANGE[0] <= config.batch_size <= BATCH_RANGE[1]:
        raise ValueError(f"A link's batch size is {BATCH_RANGE[0]} to {BATCH_RANGE[1]}, got {config.batch_size}.")
    return TrainStep(config, start=start)
