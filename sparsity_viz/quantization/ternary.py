"""Ternary quantization with TTQ-style thresholds (Zhu et al. 2017, "Trained Ternary Quantization").

Each weight becomes one of three levels ``{-Wn, 0, +Wp}`` (codes 0, 1, 2; always
2 bits). The threshold is ``t = delta * max|w|`` (``delta`` defaults to 0.05, the
paper's ``t``), per tensor or per output channel (dim 0): weights with ``|w| <= t``
go to 0, the extreme where most weights become zero. ``Wp`` is the mean of the
weights above ``t`` and ``Wn`` the mean ``|w|`` of those below ``-t`` (the
closed-form starting point of TTQ's two trained scales; the QAT fine-tuning trains
them further). A side with no weight beyond the threshold keeps an unused level at
``t``, or at 1 where ``t`` is 0 (an all-zero tensor or channel, or ``delta = 0``), so that 0 stays the only
zero level.
Masked-out and zero weights get code 1 (zero).
"""

from __future__ import annotations

import torch

from .base import QuantizedTensor, Quantizer

ZERO_CODE = 1


class TernaryQuantizer(Quantizer):
    name = "ternary"
    label = "Ternary (TTQ thresholds)"
    min_bits = 2
    max_bits = 2
    per_channel_ok = True

    def __init__(self, bits: int = 2, per_channel: bool = False, *, delta: float = 0.05):
        super().__init__(bits, per_channel)
        delta = float(delta)
        if not 0.0 <= delta < 1.0:
            raise ValueError(f"Ternary threshold factor delta must be in [0, 1), got {delta!r}.")
        self.delta = delta

    def quantize(self, weight: torch.Tensor, mask: torch.Tensor | None = None) -> QuantizedTensor:
        w = self._prepare(weight, mask)
        rows = self._rows(w)
        peak = self._row_peaks(rows)
        t = (self.delta * peak).unsqueeze(1)
        pos = rows > t
        neg = rows < -t
        fallback = torch.where(t[:, 0] > 0, t[:, 0], torch.ones_like(t[:, 0]))
        n_pos, n_neg = pos.sum(dim=1), neg.sum(dim=1)
        wide = rows.double()  # the sums in float64: two weights of 3e38 overflowed a float32 sum to an inf level
        wp = torch.where(n_pos > 0, ((wide * pos).sum(dim=1) / n_pos.clamp(min=1)).to(rows.dtype), fallback)
        wn = torch.where(n_neg > 0, ((-wide * neg).sum(dim=1) / n_neg.clamp(min=1)).to(rows.dtype), fallback)
        codes = torch.full(rows.shape, ZERO_CODE, dtype=torch.int64, device=w.device)
        codes[pos] = 2
        codes[neg] = 0
        levels = torch.stack([-wn, torch.zeros_like(wp), wp], dim=1).to(torch.float32)
        if not self.per_channel:
            levels = levels[0]
        return QuantizedTensor(
            codes=codes.reshape(w.shape),
            levels=levels,
            bits=2,
            method=self.name,
            per_channel=self.per_channel,
        )
