"""Uniform affine (asymmetric) quantization: ``w ~ (code - zero_point) * scale``.

The range is ``[lo, hi] = [min(w.min(), 0), max(w.max(), 0)]``, so it always
contains 0; ``scale = (hi - lo) / (2**bits - 1)`` and
``zero_point = clamp(round(-lo / scale), 0, 2**bits - 1)`` (an integer, so 0 is
exactly the level of code ``zero_point``). Codes are
``clamp(round(w / scale) + zero_point, 0, 2**bits - 1)``, per tensor or per output
channel (dim 0); an all-zero tensor or channel gets ``scale = 1``, ``zero_point = 0``; ``scale`` is at least
``base.MIN_SCALE``, and where ``hi - lo`` overflows float32 it is ``hi / (2**bits - 1) - lo / (2**bits - 1)``
(a grid too coarse for such a range, whose used levels would pass ±3.4e38, is refused with a ``ValueError``).
This is ``torch.fake_quantize_per_{tensor,channel}_affine(w, scale, zero_point, 0,
2**bits - 1)`` exactly (torch's ``quint8`` observer convention with a range that
includes 0), with one difference in the scale: torch's observers clamp it to their ``eps`` (1.19e-7), this to
``base.MIN_SCALE``, so a range below about 3e-5 at 8 bits keeps its resolution and gets another scale and zero
point than an observer would give.

Bits: 1 to 8. At 1 bit the two levels are ``{0, hi - lo}`` or ``{lo - hi, 0}``,
whichever side of zero holds more of the range.
"""

from __future__ import annotations

import torch

from .base import QuantizedTensor, Quantizer, grid_scale


class UniformAffineQuantizer(Quantizer):
    name = "uniform_affine"
    label = "Uniform affine"
    min_bits = 1
    max_bits = 8
    per_channel_ok = True

    def quantize(self, weight: torch.Tensor, mask: torch.Tensor | None = None) -> QuantizedTensor:
        w = self._prepare(weight, mask)
        rows = self._rows(w)
        code_max = 2**self.bits - 1
        if rows.shape[1]:
            lo = rows.amin(dim=1).clamp(max=0.0)
            hi = rows.amax(dim=1).clamp(min=0.0)
        else:
            lo = hi = torch.zeros(rows.shape[0], device=w.device)
        span = hi - lo  # (groups,); inf where hi - lo overflows float32 (3e38 and -3e38): the step from its parts there
        step = torch.where(torch.isfinite(span), span / code_max, hi / code_max - lo / code_max)
        scale = grid_scale(step, 1)
        zero_point = torch.round(-lo / scale).clamp(0, code_max).to(torch.int64)
        return self._uniform(w.shape, rows, scale, zero_point, 0, code_max)
