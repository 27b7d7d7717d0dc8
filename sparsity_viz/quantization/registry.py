"""The explicit registry of quantizers: adding one touches its file and one line here."""

from __future__ import annotations

import inspect

from .base import Quantizer
from .kmeans import KMeansQuantizer
from .ternary import TernaryQuantizer
from .uniform_affine import UniformAffineQuantizer
from .uniform_symmetric import UniformSymmetricQuantizer

QUANTIZERS: dict[str, type[Quantizer]] = {
    UniformSymmetricQuantizer.name: UniformSymmetricQuantizer,
    UniformAffineQuantizer.name: UniformAffineQuantizer,
    KMeansQuantizer.name: KMeansQuantizer,
    TernaryQuantizer.name: TernaryQuantizer,
}


def quantizer_names() -> list[str]:
    return list(QUANTIZERS)


def bits_ranges() -> str:
    """Each quantizer's bits, for help texts: ``uniform_symmetric 2-8, ..., ternary 2``."""
    return ", ".join(f"{n} {c.min_bits}" + (f"-{c.max_bits}" if c.max_bits > c.min_bits else "")
                     for n, c in QUANTIZERS.items())


def default_bits(name: str, wanted: int) -> int:
    """``wanted`` bits (a paper's choice) moved into quantizer ``name``'s range (ternary: always 2)."""
    cls = QUANTIZERS[name]
    return min(max(wanted, cls.min_bits), cls.max_bits)


def get_quantizer(name: str, bits: int, per_channel: bool = False, **params) -> Quantizer:
    """Instantiate a registered quantizer; unknown names, bad bits or params raise one ``ValueError``."""
    if name not in QUANTIZERS:
        raise ValueError(f"Unknown quantization method {name!r}; choose one of {', '.join(QUANTIZERS)}.")
    cls = QUANTIZERS[name]
    accepted = [
        p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "bits", "per_channel")
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted) if accepted else "none"
        raise ValueError(f"Quantizer {name!r} has no parameter {', '.join(unknown)} (accepted: {allowed}).")
    return cls(bits, per_channel, **params)
