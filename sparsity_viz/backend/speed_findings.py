"""The Speed page's sentences, computed from a measurement (``speed_report.SpeedReport``): every number they
state comes from the frame they read."""

from __future__ import annotations

import pandas as pd
from torch import nn

from ..figures.speed import format_label
from .speed_report import SpeedReport, interval_words


TIE_LOW, TIE_HIGH = 0.97, 1.03  # a compiled/dense ratio in [TIE_LOW, TIE_HIGH] is a tie


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
        kept = table[table["format"].str.startswith("dense")]
        if len(kept):
            names = ", ".join(f"**{r['layer']}** ({100 * r['density']:.0f} % of weights left"
                              + (f", compacted to {r['compiled_shape']}" if r["compiled_shape"] != r["shape"] else "")
                              + ")" for _, r in kept.iterrows())
            lines.append(f"At batch {b} sparse is slower than dense for {names}: the dispatcher keeps "
                         f"{'it' if len(kept) == 1 else 'them'} dense.")
    skipped = bench[bench["note"].str.startswith("skipped")].drop_duplicates("format")
    for _, row in skipped.iterrows():
        why = row["note"][len("skipped: "):].split(";")[0].split(": ", 1)[-1]
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
