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

A *scheduled* strategy (``kind = "scheduled"``): sweeps and pages run it with
``run``, whose every training goes through ``training.train`` (``imp_trainings``,
shared with ``sparsity_viz.lottery``). ``compute_masks`` serves only the
one-shot contract: per-layer magnitude, the mask IMP reaches without training
in between.
Shines: finding sparse subnetworks that train to dense accuracy from early in
training; expensive (one training per round).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..data import Dataset, train_subset_size
from ..masks import Masks, full_masks
from ..models import prunable_parameters
from ..training import TrainConfig, TrainHook, TrainResult, TrainState, evaluate, is_stopped, train
from .base import check_sparsity, select_lowest
from .erdos_renyi import keep_lowest_count
from .magnitude import MagnitudeStrategy
from .schedule import MaskTimeline, ScheduleResult

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


class RewindHook(TrainHook):
    """Keeps a copy of the weights right after optimizer step ``step`` (IMP's rewind point)."""

    def __init__(self, step: int):
        self.step = step
        self.state: dict | None = None

    def after_step(self, state: TrainState) -> None:
        if state.step == self.step:
            self.state = copy.deepcopy(state.model.state_dict())
        return None


@dataclass
class ImpTraining:
    """One finished (or stopped) training of an IMP run.

    Attributes:
        method: ``"rewind"`` (the ticket) or a control (``"reinit"``, ``"random_mask"``).
        round: 0 for the dense training, then 1, 2, ...
        masks: the masks it trained with.
        result: what ``train`` returned (``result.stopped`` when the stop flag ended it).
        seconds: wall time of the training.
    """

    method: str
    round: int
    masks: Masks
    result: TrainResult
    seconds: float


def first_training_steps(dataset: Dataset, config: TrainConfig) -> int:
    """Optimizer steps of one ``training.train`` run of ``config`` on ``dataset`` (its last batch may be short)."""
    return config.epochs * math.ceil(train_subset_size(dataset, config.train_fraction) / config.batch_size)


def imp_trainings(
    init: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    rounds: int,
    prune_round: Callable[[int, nn.Module, Masks], Masks],
    *,
    masks: Masks,
    timeline: MaskTimeline,
    controls: Sequence[str] = (),
    rewind_step: int = 0,
    seed: int = 0,
    stop=None,
    progress: Callable[[float], None] | None = None,
) -> Iterator[ImpTraining]:
    """The IMP procedure, one training at a time: every training goes through ``training.train``.

    Trains ``init`` (theta_0, not modified) with ``masks``, then per round: new masks
    ``prune_round(r, trained_ticket, masks)`` (recorded in ``timeline`` at step ``r``),
    the survivors rewound to theta_0 (or to the weights after ``rewind_step`` steps of the
    first training), the ticket trained, then each control: ``"reinit"`` (same masks,
    weights re-drawn with seed ``seed + 1000 + r``) and ``"random_mask"`` (rewound
    weights, random masks with the same counts, seed ``seed + 2000 + r``).
    Ends early, after yielding the stopped training, when the stop flag is set.

    Raises:
        TrainingDiverged: a training diverged.
    """
    for c in controls:
        if c not in CONTROLS[1:]:
            raise ValueError(f"Unknown control {c!r}; choose from {', '.join(CONTROLS[1:])}.")
    steps = first_training_steps(dataset, config)
    if rewind_step > steps:  # the rewind point was never reached: it fell back to theta_0 without a word (an audit)
        raise ValueError(f"rewind_step {rewind_step} is past the first training, which takes {steps} steps "
                         f"({config.epochs} epochs of batch {config.batch_size}); use 0 to {steps}.")
    total = 1 + rounds * (1 + len(controls))
    done = 0

    def run(method: str, r: int, start: nn.Module, m: Masks, hooks=()) -> ImpTraining:
        nonlocal done
        t0 = time.perf_counter()
        tick = None if progress is None else (lambda f: progress((done + f) / total))
        result = train(start, dataset, config, masks=m, hooks=hooks, progress=tick, stop=stop)
        done += 1
        if progress is not None:
            progress(done / total)
        return ImpTraining(method, r, m, result, time.perf_counter() - t0)

    rewind = RewindHook(rewind_step)
    dense = run("rewind", 0, init, masks, (rewind,) if rewind_step > 0 else ())
    yield dense
    if dense.result.stopped:
        return
    if rewind_step > 0 and rewind.state is None:
        raise RuntimeError(f"the first training never reached rewind step {rewind_step}")  # checked above: a bug
    start_state = rewind.state if rewind.state is not None else init.state_dict()
    trained = dense.result.model
    for r in range(1, rounds + 1):
        if is_stopped(stop):
            return
        new = prune_round(r, trained, masks)
        timeline.record(r, masks, new)
        masks = new
        start = copy.deepcopy(init)
        start.load_state_dict(start_state)
        ticket = run("rewind", r, start, masks)
        yield ticket
        if ticket.result.stopped:
            return
        trained = ticket.result.model
        for c in controls:
            if is_stopped(stop):
                return
            if c == "reinit":
                c_start, c_masks = reinit_like(init, seed + 1000 + r), masks
            else:
                c_start, c_masks = copy.deepcopy(start), random_masks_like(masks, seed + 2000 + r)
            control = run(c, r, c_start, c_masks)
            yield control
            if control.result.stopped:
                return


class IterativeStrategy(MagnitudeStrategy):
    name = "iterative"
    label = "Iterative magnitude + rewinding (lottery ticket)"
    kind = "scheduled"
    seeded = True  # unlike plain magnitude: its controls re-draw weights and masks from the seed
    scopes = ("layer", "global")

    def __init__(self, scope=None, seed=0, include_bias=False, rate: float = 0.2, output_rate: float | None = 0.1,
                 rewind_step: int = 0, control: str = "rewind"):
        super().__init__(scope=scope, seed=seed, include_bias=include_bias)
        if control not in CONTROLS:
            raise ValueError(f"Unknown control {control!r}; choose one of {', '.join(CONTROLS)}.")
        if not 0.0 < rate < 1.0:
            raise ValueError(f"Per-round rate must be in (0, 1), got {rate!r}.")
        if output_rate is not None and not 0.0 <= output_rate < 1.0:  # NaN failed mid-run, 2.0 ran (an audit)
            raise ValueError(f"The output layer's per-round rate must be in [0, 1), got {output_rate!r}.")
        if isinstance(rewind_step, bool) or not isinstance(rewind_step, int) or rewind_step < 0:
            raise ValueError(f"rewind_step must be a whole number >= 0, got {rewind_step!r}.")
        self.rate, self.output_rate, self.rewind_step, self.control = rate, output_rate, int(rewind_step), control

    def rounds_for(self, sparsity: float) -> int:
        """Rounds needed for the hidden layers to reach ``sparsity``: ``ceil(log(1-s) / log(1-rate))``.

        The geometric schedule never reaches 100 %: for ``sparsity >= 1`` it is the rounds to 99 %
        plus one last round that (cutting to the target, see ``run``) removes what is left.
        """
        check_sparsity(sparsity)
        if sparsity <= 0:
            return 0
        if sparsity >= 1:
            return self.rounds_for(0.99) + 1
        return math.ceil(math.log(1 - sparsity) / math.log(1 - self.rate) - 1e-9)

    def training_epochs(self, sparsity: float, config: TrainConfig) -> int:
        """``(rounds + 1) * config.epochs``, twice the rounds' share with a control."""
        rounds = self.rounds_for(sparsity)
        return (1 + rounds * (1 if self.control == "rewind" else 2)) * config.epochs

    def run(self, model: nn.Module, dataset: Dataset, sparsity: float | None = None,
            config: TrainConfig = TrainConfig(epochs=2), *, rounds: int | None = None,
            callback=None, progress=None, stop=None) -> ScheduleResult:
        """Train, then ``rounds`` (or enough for ``sparsity``) prune–rewind–retrain rounds.

        Every round prunes ``rate`` of each layer's survivors (``output_rate`` for the
        output layer); with a target ``sparsity`` the last round cuts every layer to
        exactly the target (global scope: all layers together), so the result has
        exactly ``expected_zeros(model, sparsity)`` zeros like every strategy.
        The history has one row per round (round 0 = dense) with the remaining
        fraction of prunable weights and the test accuracy after training, for
        the ticket (``control="rewind"``) and the chosen control.
        ``model`` is the initialisation (theta_0); it is not modified.

        Raises:
            TrainingDiverged: a training diverged.
        """
        target = sparsity if sparsity else None
        rounds = self.rounds_for(sparsity or 0.0) if rounds is None else int(rounds)
        init = copy.deepcopy(model)
        timeline = MaskTimeline.dense(init, self.include_bias)
        rates = round_rates(init, self.rate, self.output_rate, self.include_bias)
        history: list[dict] = []
        final, stopped = None, False

        def prune_round(r, trained, masks):  # masks are computed on the CPU, wherever training runs
            weights = {n: p.detach().cpu() for n, p in prunable_parameters(trained, self.include_bias).items()}
            return self.round_masks(weights, masks, rates, target if r == rounds else None)

        controls = () if self.control == "rewind" else (self.control,)
        for t in imp_trainings(init, dataset, config, rounds, prune_round, masks=full_masks(init, self.include_bias),
                               timeline=timeline, controls=controls, rewind_step=self.rewind_step, seed=self.seed,
                               stop=stop, progress=progress):
            history.append(self._row(t.round, t.masks, t.result.model, dataset, control=t.method))
            stopped = stopped or t.result.stopped
            if t.method == "rewind":
                final = t
            if callback is not None and (t.method != "rewind" or not controls or t.round == 0):
                callback(history[-1])
        stopped = stopped or len(history) < 1 + rounds * (1 + len(controls))
        return ScheduleResult(final.result.model.cpu(), {n: m.cpu() for n, m in final.masks.items()}, timeline,
                              history, stopped)

    def round_masks(self, weights: dict[str, torch.Tensor], masks: Masks, rates: dict[str, float],
                    target: float | None = None) -> Masks:
        """One round's masks: ``rate`` of the survivors go, or, with ``target``, exactly the target."""
        if self.scope == "global":
            alive = sum(int(m.sum()) for m in masks.values())
            total = sum(m.numel() for m in masks.values())
            level = 1 - (alive - round(self.rate * alive)) / total if target is None else max(target, 1 - alive / total)
            return select_lowest({n: w.abs() for n, w in weights.items()}, level, "global", masks)
        if target is None:
            return imp_round_masks(weights, masks, rates)
        return {n: select_lowest({n: w.abs()}, max(target, int((~masks[n]).sum()) / w.numel()), "layer",
                                 {n: masks[n]})[n] for n, w in weights.items()}

    @staticmethod
    def _row(r, masks, model, dataset, control):
        alive = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        ev = evaluate(model, dataset.x_test, dataset.y_test, device=str(next(model.parameters()).device))
        return {"round": r, "control": control, "remaining": alive / total, "sparsity": 1 - alive / total,
                "test_accuracy": ev.accuracy, "test_loss": ev.loss}
