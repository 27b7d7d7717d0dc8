"""Lesson: L1 makes exact zeros. Train with and without an L1 penalty (no threshold) and count the zeros."""

from __future__ import annotations

from ..masks import count_total, count_zeros, masks_from_zeros
from ..recipes import l1_recipe
from ..session import PruneConfig
from ..training import TrainConfig, train
from .base import AppState, Lesson, LessonContext, Reveal, Step, pct
from .measure import accuracy, pruned_accuracy

MODEL = "lenet300"
RECIPE = l1_recipe(MODEL)


def regularize_settings(strength: float) -> dict:
    """The Regularize page's settings for this lesson: the model's L1 recipe, no zero threshold."""
    return {"regularizer": "l1", "strength": strength, "zero_threshold": 0.0, "epochs": RECIPE.epochs,
            "lr": RECIPE.lr, "start": "dense"}


def train_config(strength: float) -> TrainConfig:
    """What the Regularize page trains with these settings (SGD, momentum 0.9, batch 64)."""
    s = regularize_settings(strength)
    return TrainConfig(epochs=s["epochs"], lr=s["lr"], optimizer="sgd", momentum=0.9, batch_size=64,
                       regularizer="l1" if strength > 0 else None, strength=strength, zero_threshold=0.0)


def trained(ctx: LessonContext, strength: float) -> tuple[int, int, float]:
    """(exact zeros, prunable weights, test accuracy) after training the dense model with L1 ``strength``."""
    result = train(ctx.model, ctx.dataset, train_config(strength))
    masks = masks_from_zeros(result.model)
    return count_zeros(masks), count_total(masks), accuracy(result.model, ctx)


def _plain(ctx: LessonContext) -> Reveal:
    zeros, total, acc = trained(ctx, 0.0)
    text = (f"Plain SGD for {RECIPE.epochs} epochs: **{zeros:,}** of {total:,} weights are exactly zero "
            f"({pct(zeros / total)}); test accuracy {pct(acc)}."
            + (" Gradient steps make weights small, never exactly zero." if zeros == 0 else ""))
    return Reveal(text, {"zeros": zeros, "weights": total, "accuracy": acc})


def _l1(ctx: LessonContext) -> Reveal:
    zeros, total, acc = trained(ctx, RECIPE.strength)
    share = zeros / total
    mag = pruned_accuracy(ctx, PruneConfig("magnitude", "global", share))
    text = (f"With L1 (λ = {RECIPE.strength:g}) and no threshold: **{zeros:,}** of {total:,} weights are exactly "
            f"zero (**{pct(share)}**), at {pct(acc)} test accuracy. The proximal step lands every weight whose "
            f"|w| is smaller than learning rate × λ on exactly 0. For comparison, global magnitude pruning of the "
            f"dense model to the same {pct(share)}, without any training, scores {pct(mag)}.")
    return Reveal(text, {"zeros": zeros, "weights": total, "accuracy": acc, "share": share, "magnitude": mag})


LESSON = Lesson(
    name="l1_zeros",
    title="L1 makes exact zeros",
    summary="Instead of cutting after training, let an L1 penalty push weights to exactly zero while training.",
    steps=(
        Step("Train without a penalty", AppState("3_regularize", MODEL, None,
                                                 {"regularize": regularize_settings(0.0)}),
             "Press **Train** with λ = 0. How many weights will be exactly zero afterwards?", _plain,
             look="press Train and read how many weights are zero"),
        Step("Train with L1", AppState("3_regularize", MODEL, None,
                                       {"regularize": regularize_settings(RECIPE.strength)}),
             f"Same training, now with an L1 penalty λ = {RECIPE.strength:g} and still no threshold. "
             "How many exact zeros now, and what happens to accuracy?", _l1,
             look="press Train; then open Weights to see where the zeros are"),
    ),
)
