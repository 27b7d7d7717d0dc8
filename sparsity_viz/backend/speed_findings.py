"""The Speed page's sentences, computed from a measurement (``speed_report.SpeedReport``): every number they
state comes from the frame they read."""

from __future__ import annotations

import pandas as pd
from torch import nn

from ..figures.speed import format_label
from .speed_report import SpeedReport, interval_words


TIE_LOW, TIE_HIGH = 0.97, 1.03  # a compiled/dense ratio in [TIE_LOW, TIE_HIGH] is a tie


def _emptied(shape) -> bool:
    """Whether a compiled shape (``"0x0"``, ``"2x0"`` or a tuple) has no weight left."""
    return 0 in shape if isinstance(shape, tuple) else "0" in str(shape).split("x")


def _names(rows) -> str:
    """The plan rows' layers in bold, each with its density and the shape it was compacted to."""
    return ", ".join(f"**{r['layer']}** ({100 * r['density']:.0f} % of weights left"
                     + (f", compacted to {r['compiled_shape']}" if r["compiled_shape"] != r["shape"] else "")
                     + ")" for _, r in rows.iterrows())


def findings(report: SpeedReport, batches: tuple[int, ...]) -> list[str]:
    """One sentence per result worth saying: compiled vs dense per batch, formats slower than dense, int8 vs
    fp32, layers the dispatcher kept dense, formats that were skipped (and why)."""
    bench, plans, lines = report.bench, report.plans, []
    for b in batches:
        g = bench[bench["batch"] == b].set_index("format")
        auto = g["ratio_dense"].get("auto")
        if auto is not None and auto == auto:
            iqr = interval_words(bench, b, "auto")
            all_dense = plans[b]["table"]["format"].str.startswith("dense").all()
            if auto < TIE_LOW:
                lines.append(f"At batch {b} the compiled model takes **{auto:.2f}×** the dense time "
                             f"({1 / auto:.1f}× faster{'; ' + iqr if iqr else ''})"
                             + (": every layer stays dense, the gain comes from removing dead neurons and one fused "
                                "call, not from skipping zeros." if all_dense else "."))
            elif auto <= TIE_HIGH:
                lines.append(f"At batch {b} the compiled model **ties** with dense ({auto:.2f}× the dense time"
                             f"{'; ' + iqr if iqr else ''})"
                             + (": the dispatcher kept every layer dense." if all_dense else "."))
            else:
                lines.append(f"At batch {b} the compiled model **loses**: {auto:.2f}× the dense time"
                             f"{'; ' + iqr if iqr else ''}"
                             + (": every layer stays dense, so this is the compiled call's own cost (or timing noise)."
                                if all_dense else ": the formats chosen when it was compiled are slower in this "
                                                  "measurement."))
        for fmt in ("csr-torch", "csr-native"):
            r = g["ratio_dense"].get(fmt)
            if r is not None and r == r and r > 1.0:
                lines.append(f"At batch {b}, {format_label(fmt)} is **{r:.2f}× slower** than dense for the "
                             "whole model.")
        q8, f32 = g["median_us"].get("csr-int8-native"), g["median_us"].get("csr-native")
        if q8 is not None and f32 is not None and q8 == q8 and f32 == f32:
            lines.append(f"At batch {b}, int8 CSR takes **{q8 / f32:.2f}×** the time of fp32 CSR (native) with "
                         f"{g['weight_bytes']['csr-int8-native'] / g['weight_bytes']['csr-native']:.2f}× its weight "
                         "bytes.")
        table = plans[b]["table"]
        # a layer compacted to nothing was not "slower"; a native dense kernel was chosen as the fastest; a layer the
        # whole-call check handed back to the original module lost as part of the whole call (an audit read all
        # three as "sparse is slower than dense ... the dispatcher keeps it dense")
        emptied = table["compiled_shape"].map(_emptied)
        original = (table["reason"].astype(str).str.startswith("original module kept") if "reason" in table
                    else emptied & False)
        if emptied.any():
            gone = table[emptied]
            lines.append(f"At batch {b} {_names(gone)} {'is' if len(gone) == 1 else 'are'} compacted away: pruning "
                         "left no path from the input to the output through "
                         f"{'its' if len(gone) == 1 else 'their'} neurons, so they cost nothing.")
        if original.any() and not emptied.any():
            lines.append(f"At batch {b} the whole compiled call was not faster than the original module, so the "
                         "original module runs.")
        kept = table[(table["format"] == "dense") & ~emptied & ~original]
        if len(kept):
            lines.append(f"At batch {b} sparse is slower than dense for {_names(kept)}: the dispatcher keeps "
                         f"{'it' if len(kept) == 1 else 'them'} dense.")
    skipped = bench[bench["note"].str.startswith("skipped")].drop_duplicates("format")
    for _, row in skipped.iterrows():
        # the first layer that says why the format is unavailable: LeNet-5's N:M skip quoted conv1's dense fallback
        # ("conv kept dense (F.conv2d) ..."), not "the mask is not N:M" of its fc layers (an audit)
        parts = row["note"][len("skipped: "):].split("; ")
        why = next((p for p in parts if "unavailable" in p), parts[0])
        lines.append(f"{format_label(row['format'])} was skipped: {why[:160]}")
    return lines


def layer_sparsity(model: nn.Module, layer: str) -> float:
    """Share of exact zeros in ``layer``'s weight."""
    return float((dict(model.named_modules())[layer].weight == 0).float().mean())


def crossover_words(crossovers: pd.DataFrame, batch: int) -> str:
    """Where each format starts to beat dense at ``batch`` ("never" where it did not in the sweep)."""
    rows = crossovers[crossovers["batch"] == batch]
    words = []
    for _, c in rows.iterrows():
        x, name = c["crossover_sparsity"], format_label(c["format"])
        words.append(f"{name} never beat dense in this sweep" if x is None or x != x else f"{name} wins from {100 * x:.0f} %")
    return "; ".join(words)
