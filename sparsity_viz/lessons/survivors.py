"""Lesson: which connections survive. The input pixels' fan-out after magnitude pruning; two strategies' overlap."""

from __future__ import annotations

import pandas as pd

from ..comparison import compare_masks
from ..connectivity import FANOUT_BORDER, fanout_rings, input_fanout
from ..data import data_batch
from ..session import PruneConfig
from .base import AppState, Lesson, LessonContext, Reveal, Step, pct
from .measure import pruned

MODEL = "lenet300"
CONFIG = PruneConfig("magnitude", "layer", 0.9)
BORDER = FANOUT_BORDER  # pixels from the image's edge that count as its border ring
# What the Survival maps page is set to (tests/app/test_lessons_page.py reads its widgets)
SURVIVAL_A = ("magnitude", 0)
SURVIVAL_B = ("snip", 0)
SURVIVAL_LEVEL = 0.9
SURVIVAL_SETTINGS = {"a": SURVIVAL_A[0], "seed_a": SURVIVAL_A[1], "b": SURVIVAL_B[0], "seed_b": SURVIVAL_B[1],
                     "level": round(100 * SURVIVAL_LEVEL)}  # the Survival maps page's settings


def chance_jaccard(table: pd.DataFrame) -> pd.Series:
    """Per row of ``comparison.survival_table``: the Jaccard overlap two random masks of the same densities expect."""
    da = (table["both"] + table["only_a"]) / table["total"].clip(lower=1)
    db = (table["both"] + table["only_b"]) / table["total"].clip(lower=1)
    union = (da + db - da * db).replace(0, float("nan"))
    return (da * db / union).fillna(1.0)


def fanout_reveal(ctx: LessonContext) -> Reveal:
    p = pruned(ctx, CONFIG)
    fan = input_fanout(p.model, p.masks, input_shape=ctx.dataset.input_shape)  # (H, W) surviving connections
    dense = input_fanout(ctx.model, None, input_shape=ctx.dataset.input_shape)
    rings = fanout_rings(fan)
    sentence = rings.sentence()
    text = (f"Dense, every pixel feeds **{int(dense.max()):,}** first-layer units. After {CONFIG.describe()}: "
            f"{sentence[0].lower()}{sentence[1:]}")
    return Reveal(text, {"dense_fanout": float(dense.max()), "border_mean": rings.border_mean,
                         "centre_mean": rings.centre_mean, "empty_pixels": float(rings.empty),
                         "empty_border": float(rings.empty_border)})


def _overlap(ctx: LessonContext) -> Reveal:
    result = compare_masks(ctx.model, SURVIVAL_A, SURVIVAL_B, SURVIVAL_LEVEL, batch=data_batch(ctx.dataset, seed=0))
    table = result["table"].copy()
    table["chance"] = chance_jaccard(table)
    everything = table.iloc[-1]
    ratio = everything["jaccard"] / everything["chance"]
    text = (f"At {pct(SURVIVAL_LEVEL)}, {SURVIVAL_A[0]} and {SURVIVAL_B[0]} keep **{int(everything['both']):,}** "
            f"connections in common: a Jaccard overlap of **{pct(everything['jaccard'])}**, where two random masks "
            f"would share {pct(everything['chance'])} ({ratio:.1f} × chance).")
    table["layer"] = table["layer"].str.removesuffix(".weight")
    return Reveal(text, {"jaccard": float(everything["jaccard"]), "chance": float(everything["chance"]),
                         "both": float(everything["both"])},
                  table[["layer", "both", "only_a", "only_b", "jaccard", "chance"]])


LESSON = Lesson(
    name="survivors",
    title="Which connections survive",
    summary="Where do the surviving weights of an MNIST network sit, and do two strategies keep the same ones?",
    steps=(
        Step("Fan-out of each pixel", AppState("5_connections", MODEL, CONFIG),
             f"After {CONFIG.describe()}, which input pixels still send connections into the network: "
             "the centre of the image or its border?", fanout_reveal,
             look="read the 28×28 fan-out picture (grey: no connection left)"),
        Step("Two strategies, one network", AppState("10_survival", MODEL, CONFIG, {"survival": SURVIVAL_SETTINGS}),
             f"{SURVIVAL_A[0].capitalize()} and {SURVIVAL_B[0].upper()} each keep {pct(1 - SURVIVAL_LEVEL)} of the "
             "weights. Do they keep the same ones? More or less than chance?", _overlap,
             look="compare the Jaccard bars with their diamonds (two random masks)"),
    ),
)
