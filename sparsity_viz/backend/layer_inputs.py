"""What each chosen layer receives on a calibration batch: the dispatcher times layers on their real inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def recorded_inputs(module: nn.Module, calib: torch.Tensor | None, layers: Iterable[tuple[str, nn.Module]],
                    transform: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> dict[str, torch.Tensor]:
    """``{name: transform(input)}`` of each of ``layers`` on one forward of ``calib`` (hooks removed after)."""
    if calib is None:
        return {}
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, args, name=name: seen.__setitem__(name, transform(args[0].detach())))
             for name, m in layers]
    try:
        with torch.no_grad():
            module(calib)
    finally:
        for hk in hooks:
            hk.remove()
    return seen
