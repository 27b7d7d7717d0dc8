"""Training an MoE in the one training loop, with the load-balancing loss in the gradient.

``MoEAuxLossHook.loss_term`` returns ``weight * model.aux_loss`` (the batch's balance loss,
set by the forward), which ``training.train`` adds to the cross-entropy before backward, so
every optimizer step follows the gradient of ``cross_entropy + weight * balance``. The
loop's ``train_loss`` stays the task loss; the hook keeps the balance loss per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..data import Dataset
from ..training import EpochStats, TrainConfig, TrainHook, TrainResult, TrainState, train
from .model import MoEMLP

DEFAULT_BALANCE_WEIGHT = 0.01  # Switch Transformer's alpha: balances load without swamping the task loss


class MoEAuxLossHook(TrainHook):
    """Puts ``weight * balance loss`` into every training step and records its mean per epoch.

    Attributes:
        weight: the balance-loss coefficient (alpha).
        history: mean balance loss (unweighted) of each finished epoch's steps.
    """

    def __init__(self, weight: float = DEFAULT_BALANCE_WEIGHT):
        if not (weight >= 0 and math.isfinite(weight)):  # inf passed and then diverged, blamed on the lr (an audit)
            raise ValueError(f"balance_weight must be a finite number >= 0, got {weight!r}.")
        self.weight = float(weight)
        self.history: list[float] = []
        self._sum, self._steps = 0.0, 0

    def on_start(self, state: TrainState) -> None:
        if not isinstance(state.model, MoEMLP):
            raise ValueError(f"MoEAuxLossHook needs an MoEMLP, got {type(state.model).__name__}.")

    def loss_term(self, state: TrainState):
        """``weight * balance loss`` of the batch just forwarded (None with weight 0)."""
        aux = state.model.aux_loss
        return self.weight * aux if self.weight > 0 and aux is not None else None

    def loss_setting(self):
        return ("balance weight", self.weight) if self.weight > 0 else None

    def after_step(self, state: TrainState):
        if state.model.aux_loss is not None:
            self._sum += float(state.model.aux_loss.detach())
            self._steps += 1
        return None

    def on_epoch_end(self, state: TrainState, stats: EpochStats) -> None:
        self.history.append(self._sum / max(self._steps, 1))
        self._sum, self._steps = 0.0, 0


def train_moe(model: MoEMLP, dataset: Dataset, config: TrainConfig = TrainConfig(), *,
              balance_weight: float = DEFAULT_BALANCE_WEIGHT, hooks: Sequence[TrainHook] = (),
              **kwargs) -> tuple[TrainResult, MoEAuxLossHook]:
    """``training.train`` with the balance loss (weight ``balance_weight``) in every step.

    Returns the ``TrainResult`` (its model a trained copy) and the hook, whose ``history`` is
    the balance loss per epoch.
    Other keyword arguments (masks, callback, progress, stop, ...) go to ``train``.
    """
    hook = MoEAuxLossHook(balance_weight)
    result = train(model, dataset, config, hooks=[hook, *hooks], **kwargs)
    return result, hook
