"""Save a model as a sparse checkpoint and prove it loads back bit-identical.

Bit-identical means same names, dtypes, shapes and bits: ``-0.0`` differs from ``+0.0``
(masking by multiplication leaves ``-w * 0``, and the sparse checkpoint restores it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..masks import Masks
from .sparse_checkpoint import SparseSave, load_sparse, save_sparse

# same-width integer views, so float comparisons see every bit (signed zeros, NaN payloads)
_BIT_VIEWS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16,
              torch.bfloat16: torch.int16}


def bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bits (so -0.0 differs from +0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
    view = _BIT_VIEWS.get(a.dtype)
    if view is not None:
        return torch.equal(a.view(view), b.view(view))
    return torch.equal(a, b)


def state_dicts_bit_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """The same keys, and every tensor ``bit_equal``."""
    return set(a) == set(b) and all(bit_equal(a[k], b[k]) for k in a)


@dataclass(frozen=True)
class RoundTrip:
    """A sparse checkpoint and whether it loaded back bit-identical to the model it came from."""

    saved: SparseSave
    ok: bool


def sparse_round_trip(model: nn.Module, masks: Masks | None = None) -> RoundTrip:
    """``save_sparse(model, masks=masks)``, loaded back with ``load_sparse`` and compared bit for bit."""
    saved = save_sparse(model, masks=masks)
    loaded = load_sparse(saved.data).state_dict
    return RoundTrip(saved, state_dicts_bit_equal(loaded, model.state_dict()))
