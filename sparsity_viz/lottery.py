"""The lottery-ticket lab: IMP with rewinding against its two controls.

Frankle & Carbin 2019: train, prune the smallest surviving weights (20 % per
hidden layer, 10 % of the output layer per round), *rewind* the survivors to
their initial values (or to an early iterate, ``rewind_step`` > 0) and train
again. The ticket is compared with

* ``reinit`` -- the same mask, freshly drawn random weights;
* ``random_mask`` -- the rewound weights under a random mask with the same
  per-layer counts.

``lottery_experiment`` returns one row per (method, round) with the remaining
fraction of prunable weights and the test accuracy at the end of the round's
training (and the best over its epochs), ready for an "accuracy vs remaining
weights" plot. The default ``LotteryConfig`` runs LeNet-300-100 on MNIST-5k in
well under a minute on 2 cores with one torch thread.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from torch import nn

from .data import Dataset
from .masks import full_masks
from .models import prunable_parameters
from .pruning.iterative import imp_round_masks, random_masks_like, reinit_like, round_rates
from .pruning.schedule import MaskTimeline, masked_training
from .training import TrainConfig, _is_stopped

METHODS = ("imp_rewind", "reinit", "random_mask")
METHOD_LABELS = {"imp_rewind": "IMP + rewinding (ticket)", "reinit": "same mask, random re-init",
                 "random_mask": "random mask, same init"}
LOTTERY_COLUMNS = ["method", "round", "remaining", "sparsity", "test_accuracy", "best_accuracy",
                   "best_epoch", "seed", "seconds"]


@dataclass(frozen=True)
class LotteryConfig:
    """How to run the lottery lab. Frozen: a cache key for the app."""

    rounds: int = 10  # 0.8^10 = 10.7 % of hidden weights left; 13 rounds reach ~5 %
    rate: float = 0.2  # fraction of surviving hidden-layer weights pruned per round (Frankle & Carbin)
    output_rate: float = 0.1  # the output layer is pruned at half the rate
    epochs: int = 3  # training epochs per round (4,000 samples: ~0.2 s an epoch)
    lr: float = 1.2e-3  # Frankle & Carbin's Adam rate for LeNet-300-100
    batch_size: int = 60  # theirs too
    rewind_step: int = 0  # 0 = rewind to initialisation; k = to the weights after k steps
    controls: tuple[str, ...] = ("reinit", "random_mask")
    seed: int = 0  # seeds shuffling, re-initialisation and random masks

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed, device="cpu")


def lottery_experiment(
    model: nn.Module,
    dataset: Dataset,
    config: LotteryConfig = LotteryConfig(),
    *,
    callback: Callable[[dict], None] | None = None,
    progress: Callable[[float], None] | None = None,
    stop=None,
    return_timeline: bool = False,
):
    """Run IMP with rewinding from ``model`` (theta_0, not modified) and the controls.

    Returns a DataFrame with ``LOTTERY_COLUMNS`` (``attrs["cancelled"]`` set);
    with ``return_timeline`` also the ``MaskTimeline`` of the ticket (one step
    per round), for a "when did each connection die" slider.
    A cancelled run keeps every finished round.
    """
    import time

    for c in config.controls:
        if c not in METHODS[1:]:
            raise ValueError(f"Unknown control {c!r}; choose from {', '.join(METHODS[1:])}.")
    tc = config.train_config()
    init = copy.deepcopy(model).cpu()
    masks = full_masks(init)
    rates = round_rates(init, config.rate, config.output_rate)
    timeline = MaskTimeline.dense(init)
    rows: list[dict] = []
    work_total = 1 + config.rounds * (1 + len(config.controls))
    done = [0]
    cancelled = False

    def emit(method, r, m, hist, t0):
        accs = [h["test_accuracy"] for h in hist]
        alive = sum(int(x.sum()) for x in m.values())
        total = sum(x.numel() for x in m.values())
        row = {"method": method, "round": r, "remaining": alive / total, "sparsity": 1 - alive / total,
               "test_accuracy": accs[-1] if accs else float("nan"),
               "best_accuracy": max(accs) if accs else float("nan"),
               "best_epoch": int(accs.index(max(accs))) + 1 if accs else 0,
               "seed": config.seed, "seconds": time.perf_counter() - t0}
        rows.append(row)
        done[0] += 1
        if callback is not None:
            callback(row)
        if progress is not None:
            progress(min(1.0, done[0] / work_total))

    rewound: dict = {}

    def keep_rewind(step, work, current, batch):
        if step == config.rewind_step:
            rewound["state"] = copy.deepcopy(work.state_dict())

    t0 = time.perf_counter()
    hist: list[dict] = []
    trained, _, stopped = masked_training(init, dataset, tc, masks, history=hist, stop=stop,
                                          on_step=keep_rewind if config.rewind_step > 0 else None)
    if not stopped:
        emit("imp_rewind", 0, masks, hist, t0)
        for c in config.controls:  # round 0 is the dense network for every method
            emit(c, 0, masks, hist, t0)
    start_state = rewound.get("state", init.state_dict())
    for r in range(1, config.rounds + 1):
        if stopped or _is_stopped(stop):
            cancelled = True
            break
        weights = {n: p.detach() for n, p in prunable_parameters(trained).items()}
        new = imp_round_masks(weights, masks, rates)
        timeline.record(r, masks, new)
        masks = new
        start = copy.deepcopy(init)
        start.load_state_dict(start_state)
        t0 = time.perf_counter()
        hist = []
        trained, _, stopped = masked_training(start, dataset, tc, masks, history=hist, stop=stop)
        if stopped:
            cancelled = True
            break
        emit("imp_rewind", r, masks, hist, t0)
        for c in config.controls:
            if _is_stopped(stop):
                cancelled = True
                break
            if c == "reinit":
                c_start, c_masks = reinit_like(init, config.seed + 1000 + r), masks
            else:
                c_start, c_masks = copy.deepcopy(start), random_masks_like(masks, config.seed + 2000 + r)
            t0 = time.perf_counter()
            hist = []
            _, _, stopped = masked_training(c_start, dataset, tc, c_masks, history=hist, stop=stop)
            if stopped:
                cancelled = True
                break
            emit(c, r, c_masks, hist, t0)
    frame = pd.DataFrame(rows, columns=LOTTERY_COLUMNS)
    frame.attrs["cancelled"] = cancelled or bool(stopped)
    return (frame, timeline) if return_timeline else frame


def ticket_advantage(frame: pd.DataFrame, low: float = 0.80, high: float = 0.95, metric: str = "best_accuracy") -> pd.DataFrame:
    """Per round with sparsity in [low, high]: ticket accuracy minus each control's (positive = ticket wins)."""
    wide = frame.pivot_table(index=["round"], columns="method", values=metric, aggfunc="mean")
    spars = frame[frame.method == "imp_rewind"].groupby("round").sparsity.mean()
    wide = wide.join(spars)
    wide = wide[(wide.sparsity >= low) & (wide.sparsity <= high)]
    for c in METHODS[1:]:
        if c in wide:
            wide[f"ticket_minus_{c}"] = wide["imp_rewind"] - wide[c]
    return wide.reset_index()
