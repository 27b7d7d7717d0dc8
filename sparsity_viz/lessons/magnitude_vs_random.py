"""Lesson: magnitude vs random. Drop the smallest weights, then the same share at random; what choosing buys."""

from __future__ import annotations

from ..session import PruneConfig
from .base import AppState, Lesson, LessonContext, Reveal, Step, pct, points
from .measure import accuracy_table, chance, dense_accuracy, pruned_accuracy

MODEL = "lenet300"
LEVELS = (0.5, 0.9, 0.99)  # the Home page's first steps too
COMPARED = 0.9  # the level where magnitude meets random


def magnitude(level: float) -> PruneConfig:
    return PruneConfig("magnitude", "layer", level)


def random(level: float) -> PruneConfig:
    return PruneConfig("random", "layer", level)


def _half(ctx: LessonContext) -> Reveal:
    dense, acc = dense_accuracy(ctx), pruned_accuracy(ctx, magnitude(LEVELS[0]))
    text = (f"Dense: **{pct(dense)}**. With the smallest {pct(LEVELS[0])} of every layer removed: **{pct(acc)}** "
            f"({points(acc - dense)}).")
    return Reveal(text, {"dense": dense, "magnitude_50": acc})


def _late(ctx: LessonContext) -> Reveal:
    dense = dense_accuracy(ctx)
    accs = {level: pruned_accuracy(ctx, magnitude(level)) for level in LEVELS}
    text = ("Magnitude pruning, per layer: " + " · ".join(f"{pct(l)} pruned → **{pct(a)}**" for l, a in accs.items())
            + f" (dense {pct(dense)}; guessing one of {ctx.dataset.num_classes} classes scores {pct(chance(ctx))}).")
    return Reveal(text, {"dense": dense, "chance": chance(ctx),
                         **{f"magnitude_{round(100 * l)}": a for l, a in accs.items()}})


def _random(ctx: LessonContext) -> Reveal:
    mag, rnd = pruned_accuracy(ctx, magnitude(COMPARED)), pruned_accuracy(ctx, random(COMPARED))
    gap = mag - rnd
    verdict = ("choosing by magnitude keeps" if gap > 0 else "random choice keeps" if gap < 0 else "both keep")
    text = (f"At {pct(COMPARED)} per layer: magnitude **{pct(mag)}**, random **{pct(rnd)}**: {verdict} "
            f"{abs(100 * gap):.1f} points more. That gap is what choosing the weights buys.")
    table = accuracy_table(ctx, [c(level) for level in LEVELS for c in (magnitude, random)])
    return Reveal(text, {"magnitude_90": mag, "random_90": rnd, "gap": gap}, table)


LESSON = Lesson(
    name="magnitude_vs_random",
    title="Magnitude vs random",
    summary="Remove the smallest weights, then the same share at random: how much does choosing matter?",
    steps=(
        Step("Half of every layer", AppState("2_prune", MODEL, magnitude(LEVELS[0])),
             "Half of each layer's weights, the smallest ones, are gone. How much test accuracy is left? "
             "Everyone writes down a guess.", _half, look="read the *Test accuracy* number and the heatmap"),
        Step("Push it further", AppState("2_prune", MODEL, magnitude(LEVELS[1])),
             f"Now {pct(LEVELS[1])} of every layer. Guess again, then drag the slider on to {pct(LEVELS[2])}. "
             "Where does the accuracy fall?", _late, look="drag the sparsity slider"),
        Step("Random, same sparsity", AppState("2_prune", MODEL, random(COMPARED)),
             f"The same {pct(COMPARED)}, but the weights to remove are drawn at random. Better or worse than "
             "magnitude, and by how much?", _random, look="switch the strategy between Magnitude and Random"),
    ),
)
