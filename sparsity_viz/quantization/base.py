"""The quantizer contract: a weight tensor in, integer codes plus a codebook out.

A ``Quantizer`` maps every entry of a weight tensor to a *code* (an index into a
small table of *levels*); ``QuantizedTensor.dequantize`` looks the levels up again.
The codes and levels are what a compressed checkpoint stores and what the size
accounting counts; the dequantized tensor is what the model runs with ("fake
quantization").

Conventions shared by every method (``uniform_symmetric``, ``uniform_affine``,
``kmeans``, ``ternary``; one file each, listed in ``registry.py``):

* ``codes`` are ``int64`` indices ``0 .. levels.shape[-1] - 1``, the same shape as
  the weight. They are *indices*, never signed integers: for the uniform methods
  the signed integer of an entry is ``codes - zero_point`` and
  ``dequantize() == (codes - zero_point) * scale`` exactly.
* Zero is always a representable level, and an entry that is exactly zero, or whose
  ``mask`` is False (a pruned weight), gets the zero code: a pruned weight stays
  exactly 0 and quantization never turns a zero into a nonzero. Quantization can
  only *create* zeros (small weights rounded to the zero level).
* Per channel means per output channel, dim 0 of the weight (rows of a Linear
  weight, filters of a Conv2d weight); ``levels`` then has one row per channel.
* Bad input is one ``ValueError``: bits outside ``[min_bits, max_bits]`` (the message
  gives the range), NaN or infinite weights, a mask of the wrong shape, per channel
  for a method that has none.
"""

from __future__ import annotations

import math

import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

MIN_SCALE = torch.finfo(torch.float32).tiny  # the smallest normal float32: 1 / scale stays finite


def grid_scale(extent: torch.Tensor, steps: int) -> torch.Tensor:
    """The float32 step of a uniform grid that spans ``extent`` (``(groups,)``, >= 0) in ``steps`` steps.

    ``extent / steps``; 1 where the extent is 0 (an all-zero tensor or channel), and at least ``MIN_SCALE``: a weight
    whose largest entry is below ~1.5e-36 would get a subnormal step whose reciprocal overflows, and
    ``0 * inf`` made an exact zero's code NaN (found by an audit; torch's fake quantization with that step turns
    the zero into a nonzero). Such a weight's tiny entries round to the zero level or the first ones instead.
    """
    return torch.where(extent > 0, (extent / steps).clamp(min=MIN_SCALE), torch.ones_like(extent)).to(torch.float32)


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """Codes plus codebook of one quantized weight tensor.

    ``levels`` is float32: per tensor ``(L,)``; per channel ``(channels, L)`` with
    channel = dim 0 of the weight. Uniform methods have ``L = 2**bits`` and carry
    ``scale`` / ``zero_point`` (``(1,)`` per tensor, ``(channels,)`` per channel);
    k-means has ``L = 2**bits`` (code 0 is the reserved zero level); ternary has
    ``L = 3`` (``-Wn, 0, +Wp``) at ``bits == 2``.
    """

    codes: torch.Tensor
    levels: torch.Tensor
    bits: int
    method: str
    per_channel: bool
    scale: torch.Tensor | None = None
    zero_point: torch.Tensor | None = None
    code_range: tuple[int, int] | None = None  # codes a quantizer can produce (None: all of the codebook)

    def dequantize(self) -> torch.Tensor:
        """The float32 weight: every code replaced by its level (per channel: row-wise)."""
        if self.levels.dim() == 1:
            return self.levels[self.codes]
        if self.codes.numel() == 0:  # no rows, or rows of nothing: -1 below would be ambiguous
            return torch.zeros(self.codes.shape, dtype=self.levels.dtype)
        rows = self.codes.reshape(self.levels.shape[0], -1)
        return self.levels.gather(1, rows).reshape(self.codes.shape)

    @property
    def zero_code(self) -> torch.Tensor:
        """The code whose level is exactly 0.0 (the first such, per channel: shape ``(channels,)``)."""
        return (self.levels == 0).to(torch.int8).argmax(dim=-1)

    def zeros(self) -> int:
        """Number of entries that dequantize to exactly 0."""
        return int((self.dequantize() == 0).sum().item())

    @property
    def grid_levels(self) -> torch.Tensor:
        """The levels a code can take (``levels`` without codebook entries the quantizer never produces)."""
        if self.code_range is None:
            return self.levels
        lo, hi = self.code_range
        return self.levels[..., lo : hi + 1]

    @property
    def num_levels(self) -> int:
        """Size of the codebook (per channel: per row)."""
        return int(self.levels.shape[-1])

    @property
    def shape(self) -> torch.Size:
        return self.codes.shape


def check_bits(bits, min_bits: int, max_bits: int, name: str) -> int:
    """``bits`` as an int, or one ``ValueError`` giving the allowed range."""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
        raise ValueError(f"{name} needs an integer number of bits in [{min_bits}, {max_bits}], got {bits!r}.")
    bits = int(bits)
    if not min_bits <= bits <= max_bits:
        if min_bits == max_bits:
            raise ValueError(f"{name} uses exactly {min_bits} bits, got {bits}.")
        raise ValueError(f"{name} supports {min_bits} to {max_bits} bits, got {bits}.")
    return bits


class Quantizer(ABC):
    """One quantization method. Subclasses set the class variables and ``quantize``."""

    name: ClassVar[str]
    label: ClassVar[str]
    min_bits: ClassVar[int] = 1
    max_bits: ClassVar[int] = 8
    per_channel_ok: ClassVar[bool] = True

    def __init__(self, bits: int, per_channel: bool = False):
        self.bits = check_bits(bits, self.min_bits, self.max_bits, f"Quantizer {self.name!r}")
        if per_channel and not self.per_channel_ok:
            raise ValueError(f"Quantizer {self.name!r} is per tensor only; per channel is not supported.")
        self.per_channel = bool(per_channel)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bits={self.bits}, per_channel={self.per_channel})"

    @abstractmethod
    def quantize(self, weight: torch.Tensor, mask: torch.Tensor | None = None) -> QuantizedTensor:
        """Codes and codebook for ``weight``; ``mask`` False entries get the zero code."""

    # --- shared helpers -------------------------------------------------------------------

    def _prepare(self, weight: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Validated float32 copy of ``weight`` with masked-out entries set to 0."""
        if not isinstance(weight, torch.Tensor):
            raise ValueError(f"Quantizer {self.name!r} needs a torch.Tensor, got {type(weight).__name__}.")
        w = weight.detach().to(torch.float32)
        if w.numel() and not bool(torch.isfinite(w).all()):
            bad = "NaN" if bool(torch.isnan(w).any()) else "infinite"
            if bool(torch.isfinite(weight.detach()).all()):  # a float64 1e300: finite, but not in float32
                raise ValueError(f"Cannot quantize a weight with values beyond float32's range (±3.4e38): "
                                 f"{int((~torch.isfinite(w)).sum())} of {w.numel()} entries of this "
                                 f"{str(weight.dtype).removeprefix('torch.')} weight are.")
            raise ValueError(
                f"Cannot quantize a weight with {bad} values "
                f"({int((~torch.isfinite(w)).sum())} of {w.numel()} entries are not finite)."
            )
        if self.per_channel and w.dim() == 0:
            raise ValueError("Per-channel quantization needs a weight with at least one dimension.")
        if mask is not None:
            if tuple(mask.shape) != tuple(w.shape):
                raise ValueError(f"Mask shape {tuple(mask.shape)} does not match weight shape {tuple(w.shape)}.")
            w = torch.where(mask.to(device=w.device, dtype=torch.bool), w, torch.zeros((), device=w.device))
        else:
            w = w.clone()
        return w

    def _rows(self, w: torch.Tensor) -> torch.Tensor:
        """The weight as ``(groups, entries)``: one row per channel, or a single row per tensor."""
        if self.per_channel:
            return w.reshape(w.shape[0], math.prod(w.shape[1:]))  # not -1: a (0, 3) weight has 0 rows of 3
        return w.reshape(1, -1)

    def _row_peaks(self, rows: torch.Tensor) -> torch.Tensor:
        """max |w| of every row of ``rows`` (``(groups,)``; 0 for rows with no entries)."""
        if rows.shape[1]:
            return rows.abs().amax(dim=1)
        return torch.zeros(rows.shape[0], device=rows.device)

    def _uniform(self, shape: torch.Size, rows: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 code_min: int, code_max: int) -> QuantizedTensor:
        """The ``QuantizedTensor`` of a uniform grid (``uniform_quantize``) over ``rows`` of a weight of ``shape``."""
        codes, levels = uniform_quantize(rows, scale, zero_point, code_min, code_max, self.bits)
        if not bool(torch.isfinite(levels.gather(1, codes)).all()):  # a range near ±3e38 on a coarse grid
            raise ValueError(
                f"{self.label} on a {self.bits}-bit grid cannot hold these weights: their range "
                f"[{rows.min().item():.3g}, {rows.max().item():.3g}] puts a level beyond float32's ±3.4e38. "
                "Scale the weights down or use more bits.")
        return QuantizedTensor(codes=codes.reshape(shape), levels=levels if self.per_channel else levels[0],
                               bits=self.bits, method=self.name, per_channel=self.per_channel, scale=scale,
                               zero_point=zero_point, code_range=(code_min, code_max))


def uniform_quantize(
    rows: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    code_min: int,
    code_max: int,
    bits: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes and levels of a uniform grid, exactly as torch's fake quantization computes them.

    ``rows`` is ``(groups, entries)``; ``scale`` (float32) and ``zero_point`` (int64) are
    ``(groups,)``. ``code = clamp(round(w * (1/scale)) + zero_point, code_min, code_max)``
    (round half to even, the multiply by the float32 reciprocal as in ATen's kernel) and
    ``level[c] = (c - zero_point) * scale``, so ``levels[codes]`` is bit-identical to
    ``torch.fake_quantize_per_{tensor,channel}_affine``. Levels: ``(groups, 2**bits)``.
    """
    inv = (1.0 / scale).unsqueeze(1)
    q = torch.round(rows * inv) + zero_point.unsqueeze(1).to(rows.dtype)
    codes = q.clamp(code_min, code_max).to(torch.int64)
    grid = torch.arange(2**bits, device=rows.device, dtype=torch.int64)
    levels = (grid.unsqueeze(0) - zero_point.unsqueeze(1)).to(torch.float32) * scale.unsqueeze(1)
    return codes, levels
