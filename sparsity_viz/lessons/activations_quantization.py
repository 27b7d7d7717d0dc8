"""Lesson: sparse activations and quantization. Zeros that come for free (ReLU), and fewer bits per weight."""

from __future__ import annotations

from ..activations import activation_sparsity
from ..quantization.model import quantize_model
from ..session import PruneConfig
from .base import AppState, Lesson, LessonContext, Reveal, Step, pct, points
from .measure import accuracy, pruned

MODEL = "lenet300"
PRUNED = PruneConfig("magnitude", "global", 0.9)
QUANT = {"method": "uniform_symmetric", "per_channel": False, "bits": 4}


def _report(model, ctx: LessonContext):
    return activation_sparsity(model, ctx.dataset.x_test, ctx.dataset.y_test)


def _dense(ctx: LessonContext) -> Reveal:
    rep = _report(ctx.model, ctx)
    layers = " · ".join(f"{l.name}: {pct(l.zero_fraction)}" for l in rep.layers)
    text = (f"On the {rep.count:,} test inputs, **{pct(rep.zero_fraction)}** of the dense model's hidden activations "
            f"are exactly zero ({layers}); {rep.never_active_units} of {rep.units} units never fire.")
    return Reveal(text, {"zero_fraction": rep.zero_fraction, "dead": rep.never_active_units, "units": rep.units},
                  rep.frame())


def _pruned(ctx: LessonContext) -> Reveal:
    dense, cur = _report(ctx.model, ctx), _report(pruned(ctx, PRUNED).model, ctx)
    change = cur.zero_fraction - dense.zero_fraction
    text = (f"After {PRUNED.describe()}: **{pct(cur.zero_fraction)}** of hidden activations are exactly zero, "
            f"against {pct(dense.zero_fraction)} dense ({points(change)}); {cur.never_active_units} units never fire "
            f"(dense: {dense.never_active_units}).")
    return Reveal(text, {"dense": dense.zero_fraction, "pruned": cur.zero_fraction,
                         "dead": cur.never_active_units, "dense_dead": dense.never_active_units}, cur.frame())


def _quantized(ctx: LessonContext) -> Reveal:
    p = pruned(ctx, PRUNED)
    qm = quantize_model(p.model, QUANT["method"], QUANT["bits"], per_channel=QUANT["per_channel"], masks=p.masks)
    total = qm.report().iloc[-1]
    before, after = accuracy(p.model, ctx), accuracy(qm.model, ctx)
    revived = int(sum(int(((t.dequantize() != 0) & ~p.masks[n].to(t.dequantize().device)).sum())
                      for n, t in qm.tensors.items()))
    text = (f"At {QUANT['bits']} bits per weight: {int(total['zeros_before']):,} weights were zero before, "
            f"**{int(total['zeros_after']):,}** after ({int(total['zeros_created']):,} zeros created by rounding; "
            f"{revived} pruned weights came back). {int(total['levels'])} distinct values remain. Test accuracy "
            f"**{pct(after)}**, against {pct(before)} before quantization ({points(after - before)}).")
    return Reveal(text, {"zeros_before": float(total["zeros_before"]), "zeros_after": float(total["zeros_after"]),
                         "created": float(total["zeros_created"]), "revived": revived, "levels": float(total["levels"]),
                         "before": before, "after": after}, qm.report())


LESSON = Lesson(
    name="activations_quantization",
    title="Sparse activations and quantization",
    summary="Zeros in what the network computes (ReLU outputs), and zeros and levels when weights get fewer bits.",
    steps=(
        Step("Zeros for free", AppState("14_activations", MODEL, None, {"activations": {"kwta": False}}),
             "No pruning at all. On a test digit, what share of the hidden units' outputs is exactly zero?",
             _dense, look="read the *Exactly zero* numbers and the per-layer table"),
        Step("After pruning", AppState("14_activations", MODEL, PRUNED, {"activations": {"kwta": False}}),
             f"Now {PRUNED.describe()}. More or fewer activations exactly zero than in the dense model?", _pruned,
             look="compare dense against current"),
        Step("Fewer bits", AppState("13_quantize", MODEL, PRUNED, {"quantize": QUANT}),
             f"Store every surviving weight of the pruned model in {QUANT['bits']} bits. "
             "Do the pruned zeros stay zero? Does rounding create new ones? What happens to accuracy?", _quantized,
             look="read the zeros and accuracy numbers, then move the bits slider"),
    ),
)
