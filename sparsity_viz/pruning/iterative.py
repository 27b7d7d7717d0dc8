"""Iterative magnitude pruning with rewinding: the lottery-ticket procedure.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis"; rewinding to an early
iterate instead of the initialisation: Frankle et al. 2020, "Linear Mode
Connectivity and the Lottery Ticket Hypothesis". Each round: train, prune a
fixed fraction of the *surviving* weights by magnitude (20 % per hidden layer,
10 % for the output layer in the paper's LeNet-300-100 runs), then rewind the
survivors to their values at initialisation (``rewind_step=0``) or at an early
step k, and train again. After r rounds ``(1 - rate)^r`` of each layer is left.

Two controls tell a "winning ticket" from mere sparsity:
``control="reinit"`` keeps each round's mask but re-draws the weights at random;
``control="random_mask"`` keeps the rewound weights but draws a random mask
with the same per-layer counts. ``sparsity_viz.lottery`` runs all three.

``compute_masks`` (the one-shot contract) is per-layer magnitude: IMP without
training in between reaches the same mask. ``run`` does the real thing.
Shines: finding sparse subnetworks that train to dense accuracy from early in
training; expensive (one training per round).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..data import Dataset
from ..masks import Masks, full_masks
from ..models import prunable_parameters
from ..training import TrainConfig, _is_stopped
from .base import select_lowest
from .erdos_renyi import keep_lowest_count
from .magnitude import MagnitudeStrategy
from .schedule import MaskTimeline, ScheduleResult, masked_training

CONTROLS = ("rewind", "reinit", "random_mask")


def round_rates(model: nn.Module, rate: float, output_rate: float | None, include_bias: bool = False) -> dict[str, float]:
    """Per-parameter pruning fraction of one round: ``output_rate`` for the last layer, ``rate`` elsewhere."""
    names = list(prunable_parameters(model, include_bias))
    last = names[-1] if not names[-1].endswith(".bias") else names[-2]
    return {n: (output_rate if (output_rate is not None and n.startswith(last.rsplit(".", 1)[0] + ".")) else rate)
            for n in names}


def imp_round_masks(weights: dict[str, torch.Tensor], current: Masks, rates: dict[str, float]) -> Masks:
    """One IMP round: prune ``rate`` of each layer's surviving weights, smallest |w| first.

    After round r a layer holds ``round`` -ed ``(1 - rate)^r`` of its weights:
    the count pruned is ``round(rate * alive)``.
    """
    out = {}
    for n, w in weights.items():
        alive = int(current[n].sum())
        dead = w.numel() - alive
        k = dead + int(round(rates[n] * alive))
        out[n] = keep_lowest_count(w.abs(), k, current[n])
    return out


def reinit_like(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with freshly drawn weights (each layer's own ``reset_parameters``)."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in fresh.modules():
            if hasattr(m, "reset_parameters") and m is not fresh:
                m.reset_parameters()
    return fresh


def random_masks_like(masks: Masks, seed: int) -> Masks:
    """Random masks with exactly the same number of survivors per parameter."""
    g = torch.Generator().manual_seed(seed)
    return {n: keep_lowest_count(torch.rand(m.shape, generator=g), int((~m).sum()), None) for n, m in masks.items()}


class IterativeStrategy(MagnitudeStrategy):
    name = "iterative"
    label = "Iterative magnitude + rewinding (lottery ticket)"
    scopes = ("layer", "global")

    def __init__(self, scope=None, seed=0, include_bias=False, rate: float = 0.2, output_rate: float | None = 0.1,
                 rewind_step: int = 0, control: str = "rewind"):
        super().__init__(scope=scope, seed=seed, include_bias=include_bias)
        if control not in CONTROLS:
            raise ValueError(f"Unknown control {control!r}; choose one of {', '.join(CONTROLS)}.")
        if not 0.0 < rate < 1.0:
            raise ValueError(f"Per-round rate must be in (0, 1), got {rate!r}.")
        self.rate, self.output_rate, self.rewind_step, self.control = rate, output_rate, int(rewind_step), control

    def rounds_for(self, sparsity: float) -> int:
        """Rounds needed for the hidden layers to reach ``sparsity``: ``ceil(log(1-s) / log(1-rate))``."""
        if sparsity <= 0:
            return 0
        if sparsity >= 1:
            raise ValueError("IMP never reaches 100 % sparsity; pick a target below 1.")
        return math.ceil(math.log(1 - sparsity) / math.log(1 - self.rate) - 1e-9)

    def run(self, model: nn.Module, dataset: Dataset, sparsity: float | None = None,
            config: TrainConfig = TrainConfig(epochs=2), *, rounds: int | None = None,
            callback=None, progress=None, stop=None) -> ScheduleResult:
        """Train, then ``rounds`` (or enough for ``sparsity``) prune–rewind–retrain rounds.

        The history has one row per round (round 0 = dense) with the remaining
        fraction of prunable weights and the test accuracy after training, for
        the ticket (``control="rewind"``) and the chosen control.
        ``model`` is the initialisation (theta_0); it is not modified.
        """
        rounds = self.rounds_for(sparsity or 0.0) if rounds is None else int(rounds)
        init = copy.deepcopy(model)
        masks = full_masks(init, self.include_bias)
        timeline = MaskTimeline.dense(init, self.include_bias)
        rates = round_rates(init, self.rate, self.output_rate, self.include_bias)
        history: list[dict] = []
        rewound: dict = {}
        total_work = rounds + 1

        def keep_rewind(step, work, current, batch):
            if step == self.rewind_step:
                rewound["state"] = copy.deepcopy(work.state_dict())
            return None

        stopped = False
        trained, masks, stopped = masked_training(
            init, dataset, config, masks, on_step=keep_rewind if self.rewind_step > 0 else None,
            stop=stop, history=[])
        start_state = rewound.get("state", init.state_dict())
        history.append(self._row(0, masks, trained, dataset, control="rewind"))
        if callback is not None:
            callback(history[-1])
        if progress is not None:
            progress(1 / total_work)
        final_model = trained
        for r in range(1, rounds + 1):
            if stopped or _is_stopped(stop):
                stopped = True
                break
            weights = {n: p.detach() for n, p in prunable_parameters(trained, self.include_bias).items()}
            if self.scope == "global":
                alive = sum(int(m.sum()) for m in masks.values())
                total = sum(m.numel() for m in masks.values())
                level = 1 - (alive - round(self.rate * alive)) / total
                new = select_lowest({n: w.abs() for n, w in weights.items()}, level, "global", masks)
            else:
                new = imp_round_masks(weights, masks, rates)
            timeline.record(r, masks, new)
            masks = new
            start = copy.deepcopy(init)
            start.load_state_dict(start_state)
            trained, _, stopped = masked_training(start, dataset, config, masks, stop=stop, history=[])
            history.append(self._row(r, masks, trained, dataset, control="rewind"))
            final_model = trained
            if self.control != "rewind":
                if self.control == "reinit":
                    ctrl_start, ctrl_masks = reinit_like(init, self.seed + 1000 + r), masks
                else:
                    ctrl_start, ctrl_masks = copy.deepcopy(start), random_masks_like(masks, self.seed + 2000 + r)
                ctrl, _, stopped = masked_training(ctrl_start, dataset, config, ctrl_masks, stop=stop, history=[])
                history.append(self._row(r, ctrl_masks, ctrl, dataset, control=self.control))
            if callback is not None:
                callback(history[-1])
            if progress is not None:
                progress((r + 1) / total_work)
        return ScheduleResult(final_model.cpu(), {n: m.cpu() for n, m in masks.items()}, timeline, history, stopped)

    @staticmethod
    def _row(r, masks, model, dataset, control):
        from ..training import evaluate

        alive = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        ev = evaluate(model, dataset.x_test, dataset.y_test)
        return {"round": r, "control": control, "remaining": alive / total, "sparsity": 1 - alive / total,
                "test_accuracy": ev.accuracy, "test_loss": ev.loss}
