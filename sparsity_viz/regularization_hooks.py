"""Training hooks that regularise by zeroing: dropout, DropConnect, an L1 penalty on activations.

All three plug into ``training.train`` as ``TrainHook`` objects. They attach PyTorch
forward hooks to the model being trained in ``on_start`` and remove them in ``on_end``
(which ``train`` calls in a ``finally``: also on divergence, a stop or an exception), so
the model ``train`` returns is the plain architecture with no hooks left. They act only
while the module is in training mode: ``evaluate`` (eval mode) sees the plain network.

- ``DropoutHook(p)`` -- dropout on hidden activations (Srivastava et al. 2014): every
  output of the model's activation modules (``activations.activation_modules``: for the
  MLP every hidden layer after its activation; for LeNet-5 the conv maps and fc1 too) is
  multiplied by a fresh Bernoulli(1 - p) keep-mask per element and scaled by 1 / (1 - p)
  ("inverted" dropout), so the expected activation is unchanged and evaluation needs no
  rescaling.
- ``DropConnectHook(p)`` -- DropConnect (Wan et al. 2013) on every prunable weight
  (``layers.prunable_weights``; biases are not dropped): one fresh Bernoulli(1 - p) keep-mask per
  weight per *batch* (shared by the batch's samples; the paper draws one per sample, which
  costs a weight copy per sample), kept weights scaled by 1 / (1 - p). Scaling choice:
  the paper evaluates with a Gaussian moment-matching approximation of the dropped
  network; we use the mean approximation instead -- inverted scaling while training, the
  plain weights at evaluation -- as dropout does. A pruned weight is 0 and stays exactly 0
  (0 times anything; the engine re-applies the masks after every step too).
- ``ActivationL1Hook(strength)`` -- adds ``strength`` times the batch mean of the L1 norm of
  all hidden activations (summed over layers) to the loss, through ``TrainHook.loss_term``.

``config_hooks(config)`` is how ``train`` turns ``TrainConfig.dropout`` / ``.dropconnect``
into hooks, so every place that trains (Regularize, fine-tuning, the CLI) gets them from
the config. The masks are drawn from a ``torch.Generator`` seeded with ``config.seed``:
the same config draws the same masks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .activations import activation_modules
from .layers import prunable_weights
from .training import TrainConfig, TrainHook, TrainState


class _Seeded:
    """One seeded ``torch.Generator`` per device (CPU and CUDA generators are distinct objects)."""

    def __init__(self, seed: int):
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def rand(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return torch.rand(shape, generator=self._generators[device], device=device)


def _check_rate(p: float, name: str) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} rate must be in [0, 1), got {p!r}.")
    return float(p)


def _activations_or_refuse(model: nn.Module, what: str) -> list[nn.Module]:
    """The model's activation modules; ``ValueError`` when it has none (a model applying ``torch.relu`` in its
    ``forward`` trained with dropout 0.9 exactly as with none, without a word: an audit)."""
    modules = activation_modules(model)
    if not modules:
        raise ValueError(f"{what} acts on the outputs of activation modules (nn.ReLU, nn.Tanh, ...), and this "
                         f"{type(model).__name__} has none (a function such as torch.relu in forward() cannot be "
                         "hooked); use activation modules, or train without it.")
    return modules


class _ForwardHooks(TrainHook):
    """Keeps the handles of the forward hooks it registers; removes them all in ``on_end``."""

    def __init__(self):
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def on_end(self, state: TrainState) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class DropoutHook(_ForwardHooks):
    """Inverted dropout at rate ``p`` on every output of the model's activation modules (training mode only)."""

    def __init__(self, p: float, seed: int = 0):
        super().__init__()
        self.p = _check_rate(p, "dropout")
        self._rng = _Seeded(seed)

    def on_start(self, state: TrainState) -> None:
        for module in _activations_or_refuse(state.model, "dropout"):
            self._handles.append(module.register_forward_hook(self._drop))

    def _drop(self, module: nn.Module, inputs, output: torch.Tensor):
        if not module.training or self.p == 0.0:
            return None
        keep = self._rng.rand(output.shape, output.device) >= self.p  # P(keep) = 1 - p
        return output * keep / (1.0 - self.p)


class DropConnectHook(_ForwardHooks):
    """DropConnect at rate ``p`` on every prunable weight: a fresh keep-mask per batch (training mode only).

    ``keep`` holds the keep-masks of the current batch (``{"fc1.weight": bool tensor}``, keyed as masks
    are), drawn in ``before_step``. For the length of a training-mode forward pass of the model, each
    prunable parameter is swapped for ``weight * keep / (1 - p)`` wherever a module holds it (a tied weight
    in each place; gradients reach the kept weights through the product), and put back after it. So every
    layer drops alike, however it uses its weight: Linear, conv 1-D / 2-D, a declared custom layer with or
    without a bias, ``nn.MultiheadAttention``'s ``in_proj_weight`` and the ``out_proj`` it reads without
    calling (re-running layers by type had made Conv1d and bias-free custom layers raise, an audit).
    """

    def __init__(self, p: float, seed: int = 0):
        super().__init__()
        self.p = _check_rate(p, "dropconnect")
        self._rng = _Seeded(seed)
        self.keep: dict[str, torch.Tensor] = {}
        self._slots: list[tuple[nn.Module, str, str]] = []  # (module, attribute, mask key) of every prunable weight
        self._swapped: list[tuple[nn.Module, str, nn.Parameter]] = []  # what a forward pass has swapped out

    def sample(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Fresh keep-masks, one per prunable weight, each element kept with probability 1 - p."""
        return {w.key: self._rng.rand(w.param.shape, w.param.device) >= self.p for w in prunable_weights(model)}

    def on_start(self, state: TrainState) -> None:
        model = state.model
        keys = {id(w.param): w.key for w in prunable_weights(model)}
        self._slots = [(m, attr, keys[id(p)]) for m in model.modules() for attr, p in m._parameters.items()
                       if p is not None and id(p) in keys]
        self._handles.append(model.register_forward_pre_hook(self._swap_in))
        self._handles.append(model.register_forward_hook(self._swap_out))

    def before_step(self, state: TrainState) -> None:
        self.keep = self.sample(state.model)

    def on_end(self, state: TrainState) -> None:
        self._swap_out()  # a forward pass that raised left its weights swapped
        super().on_end(state)
        self.keep, self._slots = {}, []

    def _swap_in(self, model: nn.Module, args) -> None:
        if not model.training or self.p == 0.0 or not self.keep or self._swapped:
            return
        dropped: dict[str, torch.Tensor] = {}
        for module, attr, key in self._slots:
            param = module._parameters[attr]
            if key not in dropped:
                dropped[key] = param * self.keep[key] / (1.0 - self.p)
            del module._parameters[attr]
            setattr(module, attr, dropped[key])  # a plain attribute for this pass: the layer reads it as its weight
            self._swapped.append((module, attr, param))

    def _swap_out(self, *_) -> None:
        for module, attr, param in reversed(self._swapped):
            delattr(module, attr)
            module._parameters[attr] = param
        self._swapped.clear()


class ActivationL1Hook(_ForwardHooks):
    """Adds ``strength`` x (batch mean of the summed |activation| over all hidden layers) to the loss."""

    def __init__(self, strength: float):
        super().__init__()
        if not (strength >= 0.0 and math.isfinite(strength)):
            raise ValueError(f"activation L1 strength must be a finite number >= 0, got {strength!r}.")
        self.strength = float(strength)
        self._seen: list[torch.Tensor] = []

    def on_start(self, state: TrainState) -> None:
        for module in _activations_or_refuse(state.model, "an activation L1 penalty") if self.strength else ():
            self._handles.append(module.register_forward_hook(self._record))

    def _record(self, module: nn.Module, inputs, output: torch.Tensor):
        if module.training:
            self._seen.append(output)

    def before_step(self, state: TrainState) -> None:
        self._seen.clear()

    def loss_term(self, state: TrainState) -> torch.Tensor | None:
        seen, self._seen = self._seen, []
        if not seen or self.strength == 0.0:
            return None
        return self.strength * sum(a.abs().flatten(1).sum(1).mean() for a in seen)

    def loss_setting(self):
        return ("activation L1 strength", self.strength) if self.strength > 0 else None

    def on_end(self, state: TrainState) -> None:
        super().on_end(state)
        self._seen = []


def config_hooks(config: TrainConfig) -> list[TrainHook]:
    """The hooks ``config`` asks for: ``DropoutHook`` if ``config.dropout > 0``, ``DropConnectHook`` if
    ``config.dropconnect > 0`` (each seeded with ``config.seed``)."""
    hooks: list[TrainHook] = []
    if config.dropout > 0:
        hooks.append(DropoutHook(config.dropout, seed=config.seed))
    if config.dropconnect > 0:
        hooks.append(DropConnectHook(config.dropconnect, seed=config.seed + 1))
    return hooks
