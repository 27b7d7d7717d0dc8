"""Lesson: layer-wise vs global. The same share of weights, cut evenly per layer or under one threshold."""

from __future__ import annotations

from ..session import PruneConfig
from .base import AppState, Lesson, LessonContext, Reveal, Step, pct, points
from .measure import accuracy, layer_table, pruned

MODEL = "lenet300"
LEVEL = 0.9
LAYER = PruneConfig("magnitude", "layer", LEVEL)
GLOBAL = PruneConfig("magnitude", "global", LEVEL)


def _layerwise(ctx: LessonContext) -> Reveal:
    p = pruned(ctx, LAYER)
    table = layer_table(p.masks)
    acc = accuracy(p.model, ctx)
    smallest = table.loc[table["weights"].idxmin()]
    text = (f"Layer-wise, every layer loses {pct(LEVEL)}, even **{smallest['layer']}**, which has only "
            f"{int(smallest['weights']):,} weights of {int(table['weights'].sum()):,}. Test accuracy: **{pct(acc)}**.")
    return Reveal(text, {"layer_accuracy": acc, "smallest_weights": float(smallest["weights"])}, table)


def _global(ctx: LessonContext) -> Reveal:
    pl, pg = pruned(ctx, LAYER), pruned(ctx, GLOBAL)
    acc_l, acc_g = accuracy(pl.model, ctx), accuracy(pg.model, ctx)
    table = layer_table(pg.masks).rename(columns={"pruned (%)": "pruned, global (%)"})
    table["pruned, layer-wise (%)"] = layer_table(pl.masks)["pruned (%)"]
    least = table.loc[table["pruned, global (%)"].idxmin()]
    most = table.loc[table["pruned, global (%)"].idxmax()]
    text = (f"One threshold over all weights removes the same {pct(LEVEL)} in total but not evenly: "
            f"**{most['layer']}** loses {most['pruned, global (%)']:.1f} %, **{least['layer']}** only "
            f"{least['pruned, global (%)']:.1f} %. Test accuracy: global **{pct(acc_g)}**, layer-wise "
            f"**{pct(acc_l)}** ({points(acc_g - acc_l)} for global).")
    return Reveal(text, {"global_accuracy": acc_g, "layer_accuracy": acc_l,
                         "least_pruned": float(least["pruned, global (%)"]) / 100,
                         "most_pruned": float(most["pruned, global (%)"]) / 100}, table)


LESSON = Lesson(
    name="layer_vs_global",
    title="Layer-wise vs global",
    summary="The same share of weights: cut evenly in every layer, or the smallest over the whole network?",
    steps=(
        Step("Every layer the same", AppState("2_prune", MODEL, LAYER),
             f"Every layer loses {pct(LEVEL)} of its weights, the big first layer and the small output layer alike. "
             "Which layer do you expect this hurts most?", _layerwise, look="read the *Where are the zeros?* table"),
        Step("One threshold for all", AppState("2_prune", MODEL, GLOBAL),
             f"Now one threshold over all weights, {pct(LEVEL)} in total. Will the output layer lose more or less "
             f"than {pct(LEVEL)}? And the accuracy?", _global,
             look="compare the table's *pruned (%)* column and the accuracy"),
    ),
)
