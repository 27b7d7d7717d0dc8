"""The Home page's "Try this first": a ten-minute path for a class, its numbers measured at run time."""

from __future__ import annotations

from .base import LessonContext, Reveal, pct
from .magnitude_vs_random import COMPARED, LEVELS, magnitude, random
from .measure import dense_accuracy, pruned_accuracy
from .survivors import BORDER, CONFIG as FANOUT_CONFIG, fanout_reveal

MODEL = "lenet300"


def first_steps(ctx: LessonContext) -> Reveal:
    """The numbered path; every number in it is measured here on ``ctx`` (the bundled ``MODEL``)."""
    dense = dense_accuracy(ctx)
    mag = {level: pruned_accuracy(ctx, magnitude(level)) for level in LEVELS}
    rnd = pruned_accuracy(ctx, random(COMPARED))
    fan = fanout_reveal(ctx).numbers
    levels = ", then ".join(pct(level) for level in LEVELS)
    path = " → ".join(f"**{pct(a)}**" for a in mag.values())
    more = ("the centre keeps more" if fan["centre_mean"] > fan["border_mean"] else "the border keeps more"
            if fan["border_mean"] > fan["centre_mean"] else "border and centre keep as many")
    text = (
        f"1. **Prune** (`{ctx.name}`): keep *Magnitude* (layer-wise) and drag the slider to {levels}. Test accuracy "
        f"goes {path} (dense **{pct(dense)}**). Where does it start to fall for you?\n"
        f"2. Switch the strategy to **Random** at {pct(COMPARED)}: **{pct(rnd)}** against {pct(mag[COMPARED])} for "
        "magnitude. The gap is what *choosing* the weights buys.\n"
        f"3. **Connections**: at {pct(FANOUT_CONFIG.sparsity)} ({FANOUT_CONFIG.strategy}, layer-wise), the 28×28 "
        f"picture of how many connections leave each pixel: a pixel of the {BORDER}-pixel border keeps "
        f"{fan['border_mean']:.1f} on average, a centre pixel {fan['centre_mean']:.1f} ({more}).\n"
        "4. **Weights**: the same model as heatmaps, layer by layer.\n"
        "5. **Regularize**: instead of cutting, let L1 training push weights to exactly zero, and compare.\n"
        "6. **Lessons**: six guided lessons that set the app up for the class with one click, ask, then reveal "
        "numbers measured at run time.\n"
        "7. **Share & export**: copy the link to hand the same state to the class."
    )
    return Reveal(text, {"dense": dense, **{f"magnitude_{round(100 * l)}": a for l, a in mag.items()},
                         "random_90": rnd, "border_mean": fan["border_mean"], "centre_mean": fan["centre_mean"]})
