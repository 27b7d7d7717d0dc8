"""A playground run: a small MLP trained from scratch on a 2-D toy, one epoch per ``training.train`` call.

``start(spec)`` builds the seeded network and its starting mask (dense, or sparse at
initialisation with a registry strategy: Erdős–Rényi, SNIP, SynFlow); ``train_epochs``
trains it further through ``training.train`` (the one loop), with L1 (proximal, exact
zeros), dropout (``TrainConfig.dropout``), the registry's gradual (AGP) schedule or
dynamic sparse training (SET / RigL drop-and-grow) as ``TrainHook``s; ``toggle`` cuts or
restores a connection or a hidden unit by hand. Every call returns a new run and
leaves the old one untouched.

Training goes one epoch per ``train`` call, so a page can redraw between calls and the
result does not depend on how the epochs were grouped: the optimizer's state is carried
from call to call (``OptimizerCarry``), each epoch's shuffle is seeded by its own index,
and the schedules see the run's global step (``GlobalSteps``). ``replay(spec, epochs,
cuts)`` therefore rebuilds exactly the network a live session reached (the URL carries
just that). ``before`` holds which connections were alive before the last call, so a
figure can show those that just vanished and those that regrew.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from ..data import Dataset, _split, data_batch, load_dataset
from ..masks import Masks, apply_masks, full_masks
from ..models import MLP
from ..pruning.dynamic import DropAndGrowHook, RigLStrategy, SETStrategy
from ..pruning.gradual import AGPHook, GradualStrategy
from ..pruning.base import wants_batch
from ..pruning.registry import get_strategy
from ..pruning.schedule import MaskTimeline
from ..training import EpochStats, TrainConfig, TrainHook, TrainState, train
from .spec import POINTS, Cut, PlaygroundSpec, check_cut

_DST = {"set": SETStrategy, "rigl": RigLStrategy}


@functools.lru_cache(maxsize=16)
def _toy(name: str, noise: float, test_fraction: float, seed: int) -> Dataset:
    base = load_dataset(name, seed=seed, noise=noise, n=POINTS)
    x = torch.cat([base.x_train, base.x_test])  # (POINTS, 2)
    y = torch.cat([base.y_train, base.y_test])  # (POINTS,)
    tr, te = _split(len(y), test_fraction, y.numpy(), seed)  # the library's stratified, seeded split
    return replace(base, x_train=x[tr].contiguous(), y_train=y[tr].contiguous(), x_test=x[te].contiguous(),
                   y_test=y[te].contiguous(), description=f"{base.description}, {100 * test_fraction:.0f} % test",
                   params={**base.params, "test_fraction": test_fraction})


def playground_dataset(spec: PlaygroundSpec) -> Dataset:
    """The run's toy: ``POINTS`` points with the spec's noise, split with its test share (cached, read-only)."""
    return _toy(spec.dataset, float(spec.noise), float(spec.test_fraction), spec.seed)


def steps_per_epoch(spec: PlaygroundSpec) -> int:
    return math.ceil(len(playground_dataset(spec).y_train) / spec.batch_size)


@dataclass
class PlaygroundRun:
    """Where a run stands. ``masks`` are the structural masks (init, schedule, regrowth, hand cuts);
    L1 makes exact zeros in the weights on top of them."""

    spec: PlaygroundSpec
    model: MLP
    masks: Masks
    history: list[EpochStats] = field(default_factory=list)
    cuts: list[Cut] = field(default_factory=list)
    optimizer_state: dict | None = None
    before: Masks | None = None  # connections alive before the last train_epochs / toggle call
    # what a hand cut removed, as it was: a unit's incoming and outgoing masks and weights, (layer, unit) ->
    # (row mask, column mask, row weights, column weights); a connection's weight, ("edge", layer, a, b) -> value.
    # Restoring puts back exactly those: setting every mask entry True revived connections the sparse start or
    # SET / RigL had removed, and weights restored as 0 left a restored connection drawn as cut (two audits)
    held: dict[tuple, tuple] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        """Epochs trained so far."""
        return len(self.history)

    @property
    def dataset(self) -> Dataset:
        return playground_dataset(self.spec)

    def alive(self) -> Masks:
        """Connections that carry signal: in the mask and not an exact zero."""
        return alive_masks(self.model, self.masks)


def alive_masks(model: MLP, masks: Masks) -> Masks:
    return {n: m & (model.get_parameter(n).detach() != 0) for n, m in masks.items()}


def build_network(spec: PlaygroundSpec) -> MLP:
    """The spec's MLP ``2 -> hidden -> 2``, initialised from its seed (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return MLP(2, spec.hidden, 2, spec.activation)


def initial_masks(spec: PlaygroundSpec, model: MLP) -> Masks:
    """Dense masks, or the registry strategy's masks at ``spec.sparsity`` (SET / RigL from a dense start: ER)."""
    if not spec.sparse_start:
        return full_masks(model)
    strategy = get_strategy(spec.init if spec.init != "dense" else "erdos_renyi", seed=spec.seed)
    ds = playground_dataset(spec)
    batch = data_batch(ds, seed=spec.seed) if wants_batch(strategy) else None
    return {n: m.cpu() for n, m in strategy.compute_masks(model, spec.sparsity, batch=batch).items()}


def start(spec: PlaygroundSpec) -> PlaygroundRun:
    """A fresh run: the seeded network with its starting mask applied, nothing trained."""
    model = build_network(spec)
    masks = initial_masks(spec, model)
    apply_masks(model, masks)
    model.eval()
    return PlaygroundRun(spec, model, masks, before=alive_masks(model, masks))


class OptimizerCarry(TrainHook):
    """Loads the optimizer state left by the previous ``train`` call and keeps the new one."""

    def __init__(self, saved: dict | None):
        self.saved = saved

    def on_start(self, state: TrainState) -> None:
        if self.saved is not None:
            state.optimizer.load_state_dict(self.saved)

    def on_end(self, state: TrainState) -> None:
        self.saved = copy.deepcopy(state.optimizer.state_dict())


class GlobalSteps(TrainHook):
    """Shows ``inner`` the run's global step and total (``offset + step`` of ``total``) instead of the call's."""

    def __init__(self, inner: TrainHook, offset: int, total: int):
        self.inner, self.offset, self.total = inner, offset, total

    def _shifted(self, state: TrainState, fn: Callable):
        local = (state.step, state.total_steps)
        state.step, state.total_steps = self.offset + local[0], self.total
        try:
            return fn(state)
        finally:
            state.step, state.total_steps = local

    def on_start(self, state):
        return self._shifted(state, self.inner.on_start)

    def before_step(self, state):
        return self._shifted(state, self.inner.before_step)

    def loss_term(self, state):
        return self._shifted(state, self.inner.loss_term)

    def loss_setting(self):
        return self.inner.loss_setting()

    def after_step(self, state):
        return self._shifted(state, self.inner.after_step)

    def on_end(self, state):
        return self._shifted(state, self.inner.on_end)


def schedule_hook(spec: PlaygroundSpec, model: MLP, masks: Masks, epoch: int) -> TrainHook | None:
    """The gradual (AGP) or drop-and-grow hook for one epoch, laid out over the run's whole budget."""
    total = steps_per_epoch(spec) * spec.epochs
    if spec.dynamics == "gradual":
        strategy = GradualStrategy(seed=spec.seed)
        return AGPHook(strategy, spec.target, strategy.event_steps(total), MaskTimeline.dense(model), masks)
    if spec.dynamics in _DST:
        return DropAndGrowHook(_DST[spec.dynamics](seed=spec.seed), masks, MaskTimeline.dense(model),
                               seed=spec.seed * 100_003 + epoch)
    return None


def epoch_config(spec: PlaygroundSpec, epoch: int) -> TrainConfig:
    """One epoch's ``TrainConfig``; ``epoch`` (0-based) seeds its shuffle and dropout masks."""
    return TrainConfig(epochs=1, lr=spec.lr, batch_size=spec.batch_size, optimizer="adam",
                       regularizer="l1" if spec.l1 > 0 else None, strength=spec.l1, dropout=spec.dropout,
                       seed=spec.seed * 100_003 + epoch, device="cpu", eval_train=True)


def train_epochs(run: PlaygroundRun, epochs: int, *, stop: Callable[[], bool] | None = None,
                 after_epoch: Callable[[PlaygroundRun], None] | None = None) -> PlaygroundRun:
    """Train ``epochs`` more epochs (never past ``spec.epochs``); a new run.

    ``stop`` is checked between epochs (an epoch is never cut short, so a stopped run can
    still be replayed); ``after_epoch`` sees the run after each epoch.

    Raises:
        TrainingDiverged: from ``training.train``; ``run`` is unchanged.
    """
    spec = run.spec
    ds = playground_dataset(spec)
    before = run.alive()
    model, masks, history, opt = run.model, run.masks, list(run.history), run.optimizer_state
    for _ in range(max(0, min(epochs, spec.epochs - run.epoch))):
        if stop is not None and stop():
            break
        e = len(history)
        carry = OptimizerCarry(opt)
        inner = schedule_hook(spec, model, masks, e)
        hooks = [carry] + ([GlobalSteps(inner, e * steps_per_epoch(spec), steps_per_epoch(spec) * spec.epochs)]
                           if inner is not None else [])
        result = train(model, ds, epoch_config(spec, e), masks=masks, hooks=hooks)
        model, opt = result.model.cpu(), carry.saved
        masks = {n: m.cpu() for n, m in (inner.masks if inner is not None else masks).items()}
        history.append(replace(result.history[0], epoch=e + 1))
        if after_epoch is not None:
            after_epoch(PlaygroundRun(spec, model, masks, list(history), list(run.cuts), opt, before, dict(run.held)))
    return PlaygroundRun(spec, model, masks, history, list(run.cuts), opt, before, dict(run.held))


def is_cut(run: PlaygroundRun, cut: Cut) -> bool:
    """True when the connection is masked, or the unit has every incoming and outgoing connection masked."""
    if cut.kind == "edge":
        return not bool(run.masks[f"fc{cut.layer}.weight"][cut.a, cut.b])
    incoming = run.masks[f"fc{cut.layer}.weight"][cut.a]
    outgoing = run.masks[f"fc{cut.layer + 1}.weight"][:, cut.a]
    return not bool(incoming.any() or outgoing.any())


def toggle(run: PlaygroundRun, kind: str, layer: int, a: int, b: int = 0) -> PlaygroundRun:
    """Cut a connection / hidden unit by hand, or restore it if it is cut; a new run (the cut is recorded).

    Restoring undoes the cut: the connections (a unit: those it had) come back with the weights they had when
    they were cut. A unit the schedule emptied, never cut by hand, gets every connection back at 0: it learns again.

    Raises:
        ValueError: no such connection or unit.
    """
    cut = Cut(run.epoch, kind, layer, a, b)
    check_cut(run.spec, cut)
    value = is_cut(run, cut)  # restore what is cut, cut what is not
    masks = {n: m.clone() for n, m in run.masks.items()}
    held = dict(run.held)
    model = copy.deepcopy(run.model)
    weights = model.get_parameter(f"fc{layer}.weight")  # (out, in)
    with torch.no_grad():
        if kind == "edge":
            masks[f"fc{layer}.weight"][a, b] = value
            if value:  # restore: the weight it had when it was cut
                weights[a, b] = held.pop(("edge", layer, a, b), 0.0)
            else:
                held[("edge", layer, a, b)] = float(weights[a, b])
        else:
            incoming, outgoing = masks[f"fc{layer}.weight"], masks[f"fc{layer + 1}.weight"]
            following = model.get_parameter(f"fc{layer + 1}.weight")  # (next, out)
            if value:  # restore: what the cut removed, or every connection (at 0) of a unit no hand cut emptied
                row, column, w_row, w_column = held.pop((layer, a), (
                    torch.ones_like(incoming[a]), torch.ones_like(outgoing[:, a]),
                    torch.zeros_like(weights[a]), torch.zeros_like(following[:, a])))
                weights[a], following[:, a] = w_row, w_column
            else:
                held[(layer, a)] = (incoming[a].clone(), outgoing[:, a].clone(), weights[a].clone(),
                                    following[:, a].clone())
                row, column = torch.zeros_like(incoming[a]), torch.zeros_like(outgoing[:, a])
            incoming[a], outgoing[:, a] = row, column
    apply_masks(model, masks)
    return PlaygroundRun(run.spec, model, masks, list(run.history), [*run.cuts, cut], run.optimizer_state,
                         run.alive(), held)


def replay(spec: PlaygroundSpec, epochs: int, cuts: Sequence[Cut] = (), *,
           progress: Callable[[float], None] | None = None) -> PlaygroundRun:
    """The run a session reached by training ``epochs`` epochs with ``cuts`` made on the way (a shared link)."""
    epochs = min(max(0, int(epochs)), spec.epochs)
    run = start(spec)
    pending = sorted(cuts, key=lambda c: c.epoch)
    for e in range(epochs + 1):
        for c in [c for c in pending if c.epoch == e]:
            run = toggle(run, c.kind, c.layer, c.a, c.b)
        if e < epochs:
            run = train_epochs(run, 1)
            if progress is not None:
                progress((e + 1) / max(epochs, 1))
    return run


def describe_changes(run: PlaygroundRun) -> dict[str, int]:
    """Connections alive now, and since the last call: how many vanished and how many (re)appeared."""
    now = run.alive()
    before = run.before if run.before is not None else now
    return {"alive": sum(int(m.sum()) for m in now.values()),
            "total": sum(m.numel() for m in now.values()),
            "vanished": sum(int((before[n] & ~now[n]).sum()) for n in now),
            "appeared": sum(int((now[n] & ~before[n]).sum()) for n in now)}
