"""Uniform symmetric quantization: ``w ~ q * scale`` with a signed integer ``q``.

``qmax = 2**(bits-1) - 1`` and ``q`` lies in the *restricted* range ``[-qmax, qmax]``
(as torch's ``qint8`` weights with ``quant_min=-127``): the grid is symmetric
around 0, so 0 is exact and ``+w`` and ``-w`` quantize to opposite values.
``scale = max|w| / qmax``, per tensor or per output channel (dim 0); a tensor or
channel that is all zero gets ``scale = 1`` and every code the zero level; ``scale`` is at least
``base.MIN_SCALE`` (``grid_scale``).

Codes are unsigned indices: ``code = q + 2**(bits-1)`` and the stored
``zero_point`` is ``2**(bits-1)``, so ``dequantize() == (code - zero_point) * scale``
like the affine method. Code 0 (``-2**(bits-1) * scale``, the two's-complement
minimum) is never produced. In torch's terms this is
``fake_quantize_per_{tensor,channel}_affine(w, scale, 0, -qmax, qmax)``.

Bits: 2 to 8. One bit has no symmetric grid that contains zero (the restricted
range is ``{0}`` alone); the 1-bit and 2-bit extremes are ``uniform_affine`` at 1
bit (levels ``{0, s}`` or ``{-s, 0}``), ``kmeans`` at 1 bit (``{0, c}``) and ``ternary``.
"""

from __future__ import annotations

import torch

from .base import QuantizedTensor, Quantizer, grid_scale


class UniformSymmetricQuantizer(Quantizer):
    name = "uniform_symmetric"
    label = "Uniform symmetric"
    min_bits = 2
    max_bits = 8
    per_channel_ok = True

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def quantize(self, weight: torch.Tensor, mask: torch.Tensor | None = None) -> QuantizedTensor:
        w = self._prepare(weight, mask)
        rows = self._rows(w)
        peak = self._row_peaks(rows)
        scale = grid_scale(peak, self.qmax)
        offset = 2 ** (self.bits - 1)
        zero_point = torch.full_like(scale, offset, dtype=torch.int64)
        return self._uniform(w.shape, rows, scale, zero_point, offset - self.qmax, offset + self.qmax)
