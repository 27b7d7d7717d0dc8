"""Quantization-aware fine-tuning: train through the quantizer with a straight-through estimator.

``QuantizationHook`` plugs into the one training loop (``training.train``) and keeps,
for every prunable weight, what the model *really* is: codes plus a codebook. The
model's parameter always holds the quantized (dequantized) weight, so every forward
pass, every epoch's test accuracy and the final model run on quantized weights.

Two ways a step changes a quantized weight, chosen per method (``MODES``):

* ``"ste"`` (uniform symmetric / affine): the straight-through estimator. A full-
  precision *shadow* weight is kept next to the model. The gradient of the loss with
  respect to the quantized weight is treated as the gradient of the shadow weight
  (rounding is taken as the identity on the backward pass): after the optimizer
  step, the update it made to the quantized weight, ``p - w_q``, is added to the
  shadow, and the shadow is quantized again (scale and zero point recomputed from
  it), which gives the next ``w_q``.
* ``"shared"`` (k-means, Deep Compression's trained quantization; Han et al. 2016,
  section 3.3): the codes stay fixed and the *centroids* are trained. All weights
  sharing a centroid are one parameter, so the gradient of centroid ``k`` is the sum
  of the gradients of its weights, ``dL/dC_k = sum_{i: code_i = k} dL/dW_i``; a
  centroid optimizer of the run's kind (SGD with the run's lr and momentum, or Adam)
  steps the centroids. With plain SGD one step is ``C_k <- C_k - lr * dL/dC_k``,
  exactly the paper's update.
* ``"ttq"`` (ternary, Zhu et al. 2017): both: the shadow weights move by STE and are
  re-thresholded into codes every step, and the two scales ``Wp``/``Wn`` are trained
  by the summed gradients of the weights assigned to them. As in the paper's eq. 8, a
  shadow weight's update is scaled by ``Wp`` (code +), ``Wn`` (code -) or 1 (code 0);
  with plain SGD that is ``-lr * scale * dL/dw_t`` exactly.

The zero level is never trained (its gradient is dropped) and the pruning masks are
held: a pruned weight has the zero code and its shadow stays 0, so it is exactly 0
before and after every step. ``train`` applies the masks after each optimizer step
as well.

With ``config.epochs == 0`` nothing is trained and ``quantize_aware_finetune``
returns the post-training quantization (the same codes as ``quantize_model``).

Bits may differ per layer (Deep Compression used 8 bits for conv and 5 for fc on
AlexNet): ``bits`` is an int or a mapping with weight names, layer names or the
layer kinds ``"conv"`` / ``"fc"`` as keys (``layer_bits``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace

import torch
from torch import nn

from ..data import Dataset
from ..layers import prunable_weights
from ..masks import Masks, masks_from_zeros, validate_masks
from ..models import prunable_parameters
from ..training import EpochStats, StopFlag, TrainConfig, TrainHook, TrainState, train
from .base import QuantizedTensor, Quantizer
from .model import QuantizedModel
from .registry import get_quantizer

MODES = ("ste", "shared", "ttq")
DEFAULT_MODES = {"kmeans": "shared", "ternary": "ttq"}  # every other method: "ste"

Bits = int | Mapping[str, int]


def default_mode(method: str) -> str:
    """How QAT trains ``method``: ``"shared"`` for k-means, ``"ttq"`` for ternary, else ``"ste"``."""
    return DEFAULT_MODES.get(method, "ste")


def layer_bits(model: nn.Module, bits: Bits) -> dict[str, int]:
    """``{weight name: bits}`` for every prunable weight of ``model`` (``layers.prunable_weights``: attention's
    ``in_proj_weight`` too, where a list of ``weight``-owning layers had left it out and ``compress`` failed on it).

    ``bits`` is one int for all, or a mapping looked up by weight name (``"fc1.weight"``), then layer name
    (``"fc1"``), then kind: ``"conv"`` for a convolution's weight (rank 3 or more: Conv1d and Conv2d, as the
    index width of ``compression.size.default_index_bits``), ``"fc"`` for the rest. A weight the mapping does not
    cover, or a key that names nothing, raises ``ValueError``.
    """
    weights = prunable_weights(model)
    if not isinstance(bits, Mapping):
        return {w.key: bits for w in weights}
    known = {"conv", "fc"} | {w.label for w in weights} | {w.key for w in weights}
    unknown = sorted(set(bits) - known)
    if unknown:
        raise ValueError(f"bits names no layer or layer kind: {', '.join(unknown)} (use 'conv', 'fc' or layer names).")
    out = {}
    for w in weights:
        kind = "conv" if w.param.dim() > 2 else "fc"
        for key in (w.key, w.label, kind):
            if key in bits:
                out[w.key] = bits[key]
                break
        else:
            raise ValueError(f"bits gives no width for layer {w.label!r} ({kind}); add {kind!r} or {w.label!r}.")
    return out


def quantizers_for(model: nn.Module, method: str, bits: Bits, per_channel: bool = False,
                   **params) -> dict[str, Quantizer]:
    """One validated quantizer per prunable weight (bad method, bits or params: ``ValueError``)."""
    made: dict[int, Quantizer] = {}
    out = {}
    for name, b in layer_bits(model, bits).items():
        key = b if isinstance(b, int) and not isinstance(b, bool) else id(b)
        if key not in made:
            made[key] = get_quantizer(method, b, per_channel, **params)
        out[name] = made[key]
    return out


def _quantize(quantizer: Quantizer, name: str, weight: torch.Tensor, mask: torch.Tensor | None) -> QuantizedTensor:
    try:
        return quantizer.quantize(weight, mask)
    except ValueError as exc:
        raise ValueError(f"Layer {name}: {exc}") from None


@torch.no_grad()
def quantize_layers(model: nn.Module, method: str, bits: Bits, *, per_channel: bool = False,
                    masks: Masks | None = None, **params) -> QuantizedModel:
    """``quantize_model`` with per-layer bits (``layer_bits``); same result for one int.

    Never mutates ``model``; ``masks`` default to ``masks_from_zeros(model)``.
    """
    quantizers = quantizers_for(model, method, bits, per_channel, **params)
    masks = _check_masks(model, masks)
    out = copy.deepcopy(model)
    target = prunable_parameters(out)
    tensors, before = {}, {}
    for name, param in prunable_parameters(model).items():
        qt = _quantize(quantizers[name], name, param, masks.get(name))
        tensors[name] = qt
        before[name] = _kept_nonzero(param, masks.get(name))
        target[name].copy_(qt.dequantize().to(dtype=target[name].dtype, device=target[name].device))
    return QuantizedModel(model=out, tensors=tensors, masks=before)


def _check_masks(model: nn.Module, masks: Masks | None) -> Masks:
    if masks is None:
        return masks_from_zeros(model)
    validate_masks(model, masks)
    return dict(masks)


def _kept_nonzero(param: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    alive = param.detach().cpu() != 0
    if mask is not None:
        alive &= mask.detach().cpu().to(torch.bool)
    return alive


def summed_level_gradient(grad: torch.Tensor, qt: QuantizedTensor) -> torch.Tensor:
    """``dL/dlevels``: the gradients of the weights summed per code (per channel: per row and code).

    Shaped like ``qt.levels``. This is Deep Compression's centroid gradient:
    ``dL/dC_k = sum over weights with code k of dL/dW``.
    """
    levels = qt.levels
    rows = levels.shape[0] if levels.dim() == 2 else 1
    codes = qt.codes.reshape(rows, -1)
    g = grad.detach().to(torch.float32).reshape(rows, -1)
    out = torch.zeros((rows, levels.shape[-1]), dtype=torch.float32, device=g.device)
    out.scatter_add_(1, codes.to(g.device), g)
    return out.reshape(levels.shape)


class QuantizationHook(TrainHook):
    """Quantization-aware training inside ``training.train`` (see the module docstring).

    Args:
        method: a registered quantizer name.
        bits: an int, or per layer (``layer_bits``).
        per_channel: per output channel levels (methods that support it).
        mode: ``"ste"``, ``"shared"`` or ``"ttq"``; default per method (``default_mode``).
        params: quantizer parameters (``max_iter`` for k-means, ``delta`` for ternary).

    After the run, ``tensors`` holds the final ``QuantizedTensor`` of every prunable
    weight (on the training device) and the model holds exactly their dequantized values.
    """

    def __init__(self, method: str, bits: Bits, *, per_channel: bool = False, mode: str | None = None, **params):
        mode = mode or default_mode(method)
        if mode not in MODES:
            raise ValueError(f"Unknown QAT mode {mode!r}; choose one of {', '.join(MODES)}.")
        if isinstance(bits, int):  # validate early: bad bits / method / params fail before any training
            get_quantizer(method, bits, per_channel, **params)
        self.method, self.bits, self.per_channel, self.mode, self.params = method, bits, per_channel, mode, params
        self.tensors: dict[str, QuantizedTensor] = {}
        self.shadow: dict[str, torch.Tensor] = {}
        self.quantizers: dict[str, Quantizer] = {}
        self.levels: dict[str, torch.Tensor] = {}  # trained levels ("shared", "ttq"), leaf tensors
        self.frozen: dict[str, torch.Tensor] = {}  # True where a level is the zero level (never trained)
        self.level_optimizer: torch.optim.Optimizer | None = None

    @property
    def trains_levels(self) -> bool:
        return self.mode in ("shared", "ttq")

    @property
    def requantizes(self) -> bool:
        return self.mode in ("ste", "ttq")

    @torch.no_grad()
    def on_start(self, state: TrainState) -> None:
        params = prunable_parameters(state.model)
        self.quantizers = quantizers_for(state.model, self.method, self.bits, self.per_channel, **self.params)
        masks = state.masks or {}
        for name, p in params.items():
            mask = masks.get(name)
            shadow = p.detach().clone()
            if mask is not None:
                shadow.mul_(mask.to(shadow.dtype))
            self.shadow[name] = shadow
            self.tensors[name] = _quantize(self.quantizers[name], name, shadow, mask)
            if self.trains_levels:
                levels = self.tensors[name].levels.detach().clone()
                self.frozen[name] = levels == 0
                self.levels[name] = levels.requires_grad_(True)
        if self.trains_levels and self.levels:
            self.level_optimizer = _level_optimizer(list(self.levels.values()), state.config)
        self._write(state.model)

    def before_step(self, state: TrainState) -> None:
        """Put the quantized weights in before the forward pass (they stay there between steps)."""
        self._write(state.model)

    @torch.no_grad()
    def after_step(self, state: TrainState) -> Masks | None:
        params = prunable_parameters(state.model)
        masks = state.masks or {}
        if self.trains_levels:
            self.level_optimizer.zero_grad(set_to_none=False)
            for name, p in params.items():
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                g = summed_level_gradient(grad, self.tensors[name])
                g[self.frozen[name]] = 0.0  # the zero level is fixed
                self.levels[name].grad = g
            self.level_optimizer.step()
            for name in params:
                self.levels[name][self.frozen[name]] = 0.0
        for name, p in params.items():
            qt = self.tensors[name]
            mask = masks.get(name)
            if self.requantizes:
                # STE: the optimizer's update to the quantized weight moves the shadow weight
                quantized = qt.dequantize().to(p.dtype)
                update = p.detach() - quantized
                if self.mode == "ttq":  # Zhu et al. 2017, eq. 8: scaled by Wp / Wn where the code is nonzero, else 1
                    update.mul_(torch.where(quantized != 0, quantized.abs(), torch.ones_like(quantized)))
                self.shadow[name].add_(update)
                if mask is not None:
                    self.shadow[name].mul_(mask.to(p.dtype))
                qt = _quantize(self.quantizers[name], name, self.shadow[name], mask)
            if self.trains_levels:
                qt = replace(qt, levels=self.levels[name].detach().clone(), scale=None, zero_point=None)
            self.tensors[name] = qt
        self._write(state.model)
        return None

    def on_epoch_end(self, state: TrainState, stats: EpochStats) -> None:
        self._write(state.model)

    @torch.no_grad()
    def _write(self, model: nn.Module) -> None:
        for name, p in prunable_parameters(model).items():
            if name in self.tensors:
                p.copy_(self.tensors[name].dequantize().to(dtype=p.dtype, device=p.device))


def _level_optimizer(levels: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """The run's optimizer kind over the trained levels (no weight decay: a codebook is not a weight)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(levels, lr=config.lr, momentum=config.momentum)
    return torch.optim.Adam(levels, lr=config.lr)


def quantize_aware_finetune(
    model: nn.Module,
    dataset: Dataset,
    method: str,
    bits: Bits,
    config: TrainConfig,
    *,
    per_channel: bool = False,
    masks: Masks | None = None,
    mode: str | None = None,
    callback=None,
    progress=None,
    stop: StopFlag | object | None = None,
    **params,
) -> QuantizedModel:
    """Quantize a copy of ``model`` and fine-tune it through the quantizer; ``model`` is untouched.

    Args:
        model: the (pruned) fp32 model.
        dataset: its dataset (train split for the steps, test split per epoch).
        method: a registered quantizer (``uniform_symmetric``, ``uniform_affine``, ``kmeans``, ``ternary``).
        bits: an int or per layer (see ``layer_bits``).
        config: the fine-tuning; ``epochs == 0`` gives post-training quantization.
        per_channel: per output channel (uniform, ternary).
        masks: pruning masks, held (default: the model's exact zeros).
        mode: how levels train (``MODES``); default per method.
        callback, progress, stop: as in ``training.train``.
        params: quantizer parameters.

    Returns:
        A ``QuantizedModel`` on the CPU whose model runs exactly on its tensors' levels.

    Raises:
        ValueError: bad method, bits, params, masks, non-finite weights, or a ``zero_threshold`` in
            ``config`` (the grid decides which weights are zero; a threshold would be undone by it).
        TrainingDiverged: the fine-tuning diverged.
    """
    if config.zero_threshold > 0:  # training would zero small weights, then the hook writes the levels back
        raise ValueError(f"Quantization-aware fine-tuning takes no zero_threshold (got {config.zero_threshold}): "
                         "the quantizer's grid decides which weights are zero. Prune first, or set it to 0.")
    masks = _check_masks(model, masks)
    quantizers_for(model, method, bits, per_channel, **params)  # fail before training on bad input
    hook = QuantizationHook(method, bits, per_channel=per_channel, mode=mode, **params)
    result = train(model, dataset, config, masks=masks, hooks=[hook], callback=callback, progress=progress, stop=stop)
    out = result.model.cpu().eval()
    tensors = {n: _to_cpu(qt) for n, qt in hook.tensors.items()}
    with torch.no_grad():  # the model holds exactly the dequantized levels (also after a divergence restore)
        for name, p in prunable_parameters(out).items():
            p.copy_(tensors[name].dequantize().to(p.dtype))
    before = {n: _kept_nonzero(p, masks.get(n)) for n, p in prunable_parameters(model).items()}
    return QuantizedModel(model=out, tensors=tensors, masks=before)


def _to_cpu(qt: QuantizedTensor) -> QuantizedTensor:
    return replace(
        qt,
        codes=qt.codes.detach().cpu(),
        levels=qt.levels.detach().cpu(),
        scale=qt.scale.detach().cpu() if qt.scale is not None else None,
        zero_point=qt.zero_point.detach().cpu() if qt.zero_point is not None else None,
    )
