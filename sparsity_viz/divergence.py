"""When training has diverged: the rules ``training.train`` checks, and the error it raises.

Four reasons, each a ``TrainingDiverged.reason``:

* ``"non-finite loss"``: a batch loss is NaN or infinite.
* ``"loss exploded"``: a batch loss exceeds ``DIVERGENCE_FACTOR`` x max(reference, ln C).
  The reference is the loss of the first batch; C is the number of classes, and
  ln C is the loss of a uniform guess, which keeps the bound meaningful when a
  fine-tuned model starts near zero loss (a reference of 1e-3 alone would allow
  only 0.1). With the factor 100 the bound is 69 for two classes and 230 for ten:
  healthy runs stay far below it (fine-tuning and training from scratch alike),
  while a learning rate that is too large drives batch losses to 1e2 to 1e12
  within an epoch, often to fall back to finite values later (SGD at lr 1e4 with
  L1: 2.6e12, then 7e3), which is why the bound is checked at every step. The bound is
  at least ``SPREAD_FACTOR`` x the first batch's largest logit range: a sample's loss is at
  most its logit range + ln C, so a confident model (weights x 10: logits 1e4 apart) loses
  hundreds on one wrong sample, which is not divergence (a Survival run of such an upload
  and L1 at its default settings were stopped as diverged; an audit). A hook that
  changes the masks keeps the reference: the bound leaves a pruned model room (its loss
  stays near or below ln C), and restarting the reference at the batch after each change
  let AGP, SET and RigL runs at lr 1e4, whose masks change at almost every step, return
  batch losses of 1e11 to 1e12 as results (found by an audit).
* ``"accuracy collapsed to chance"``: at the end of an epoch the test accuracy is
  at most chance + ``CHANCE_MARGIN``, although it was at least chance +
  ``START_MARGIN`` at the reference point. Chance is what a constant guess of the
  most frequent test label scores. The reference point is the start of training
  (one evaluation of the test split, milliseconds on these datasets), or the end of
  the last epoch in which a hook changed the masks: pruning a model to nothing on
  purpose is not divergence, and training from scratch, which starts at chance,
  never trips this rule. A penalty that zeroes every weight of a trained model
  does trip it (its loss stays near ln C; only the accuracy tells).
* ``"non-finite weights"``: a weight is NaN or infinite at the end of an epoch.

When a rule trips, ``train`` restores the last good state (the end of the last
finished epoch, or the start) and raises ``TrainingDiverged`` with it in ``.result``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

DIVERGENCE_FACTOR = 100.0  # a batch loss beyond 100 x max(first loss, ln C) has diverged
SPREAD_FACTOR = 2.0  # ... and beyond twice the first batch's largest logit range (max - min of a sample's logits)
CHANCE_MARGIN = 0.05  # accuracy within 5 points of a constant guess counts as chance
START_MARGIN = 0.2  # the accuracy rule applies only to a model that was 20 points above chance

REASONS = ("non-finite loss", "loss exploded", "accuracy collapsed to chance", "non-finite weights")


class TrainingDiverged(RuntimeError):
    """Training diverged; ``result`` (a ``TrainResult``) holds the model at its last good state.

    Attributes:
        result: the model, history and masks at the end of the last finished epoch (or the start).
        epoch: the 1-based epoch in which the divergence was detected.
        reason: one of ``REASONS``.
    """

    def __init__(self, message: str, result: Any, epoch: int = 0, reason: str = "non-finite loss"):
        super().__init__(message)
        self.result = result
        self.epoch = epoch
        self.reason = reason

    def __reduce__(self):  # picklable, so a sweep point that diverged in a worker process arrives as itself
        return (type(self), (self.args[0], self.result, self.epoch, self.reason))


def chance_accuracy(labels: torch.Tensor) -> float:
    """The accuracy of always guessing the most frequent label (NaN for no labels)."""
    if labels.numel() == 0:
        return float("nan")
    return float(torch.bincount(labels.flatten().cpu()).max()) / labels.numel()


class DivergenceMonitor:
    """Applies the rules above to one run: ``check_loss`` per batch, ``check_accuracy`` per epoch.

    Each check returns None, or ``(reason, detail)`` where detail is a short phrase for the message.
    """

    def __init__(self, start_accuracy: float, chance: float):
        self.chance = chance
        self.reference_accuracy = start_accuracy
        self.reference_loss: float | None = None
        self.reference_spread = 0.0  # the first batch's largest logit range
        self.masks_changed = False

    def check_loss(self, loss: float, logits: torch.Tensor) -> tuple[str, str] | None:
        """``loss`` of a batch whose ``logits`` are ``(B, classes)``."""
        if not math.isfinite(loss):
            return "non-finite loss", f"the loss became {loss}"
        if self.reference_loss is None:
            self.reference_loss = loss
            spread = (logits.detach().amax(-1) - logits.detach().amin(-1)).max() if logits.numel() else 0.0
            self.reference_spread = float(spread)
            return None
        num_classes = logits.shape[-1]
        bound = max(DIVERGENCE_FACTOR * max(self.reference_loss, math.log(max(num_classes, 2))),
                    SPREAD_FACTOR * self.reference_spread)
        if loss > bound:
            return "loss exploded", f"a batch loss of {loss:.3g} exceeds {bound:.3g}"
        return None

    def new_masks(self) -> None:
        """A hook changed the masks: the accuracy reference restarts at the end of this epoch (the loss one stays)."""
        self.masks_changed = True

    def check_accuracy(self, accuracy: float) -> tuple[str, str] | None:
        if self.masks_changed:
            self.masks_changed = False
            self.reference_accuracy = accuracy
            return None
        ref, chance = self.reference_accuracy, self.chance
        if not all(math.isfinite(v) for v in (accuracy, ref, chance)):
            return None
        if ref >= chance + START_MARGIN and accuracy <= chance + CHANCE_MARGIN:
            return ("accuracy collapsed to chance",
                    f"test accuracy fell to {accuracy:.1%} from {ref:.1%}; a constant guess scores {chance:.1%}")
        return None
