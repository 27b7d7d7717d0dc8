"""Attribution: which inputs a (dense or pruned) model looks at, through Captum.

The idea is a plain name -> Captum class table (``METHODS``) and one verb,
``attribute(model, inputs, target, method)``, shared by every method, as in
Captum itself. Models are never touched: each call works on an eval-mode deep
copy. On that copy, modules the forward pass uses more than once (our models
reuse one ``ReLU`` / ``MaxPool2d``) are given one private copy per use with
``torch.fx``, because Captum's DeepLift rules require single-use modules; this
changes no numbers for the other methods.

``rank_correlation`` (Spearman, average ranks for ties) and
``compare_attributions`` answer "does the pruned model still look at the same
pixels?"; ``gradient_field`` is the attribution view for 2-D toys.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from captum.attr import DeepLift, InputXGradient, IntegratedGradients, Occlusion, Saliency
from torch import nn

from .data import as_tensor
from .devices import resolve_device
from .layers import fx_trace, once_per_architecture
from .masks import require_finite


@dataclass(frozen=True)
class MethodInfo:
    """One attribution method: its Captum class, a menu label and what it needs."""

    name: str
    cls: type
    label: str
    description: str
    needs_module: bool = False  # Captum wants an nn.Module, not any callable (hooks)

    @property
    def init_keywords(self) -> tuple[str, ...]:
        """Keywords of the Captum constructor after the model (e.g. ``multiply_by_inputs``)."""
        return _keywords(self.cls.__init__)[1:]

    @property
    def attribute_keywords(self) -> tuple[str, ...]:
        """Keywords of Captum's ``attribute()`` besides ``inputs`` and ``target`` (given positionally here)."""
        return tuple(k for k in _keywords(self.cls.attribute) if k not in _POSITIONAL)

    def split_kwargs(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``kwargs`` split into (constructor, ``attribute()``) keywords by Captum's signatures.

        Raises:
            ValueError: a keyword neither accepts, naming the method's accepted keywords.
        """
        init = {k: v for k, v in kwargs.items() if k in self.init_keywords}
        call = {k: v for k, v in kwargs.items() if k not in init}
        unknown = [k for k in call if k not in self.attribute_keywords]
        if unknown:
            raise ValueError(
                f"{self.name} does not accept {', '.join(map(repr, unknown))}"
                f"{' (pass inputs and target positionally)' if set(unknown) & set(_POSITIONAL) else ''}; "
                f"its keywords are {', '.join(self.init_keywords + self.attribute_keywords)} "
                f"(constructor: {', '.join(self.init_keywords) or 'none'})."
            )
        return init, call


_POSITIONAL = ("inputs", "target")


def _keywords(fn) -> tuple[str, ...]:
    """Parameter names of ``fn`` that can be passed by keyword, ``self`` left out."""
    params = inspect.signature(fn).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in params if p.kind in kinds and p.name != "self")


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("saliency", Saliency, "Saliency", "|d output / d input|: where a small change moves the score."),
        MethodInfo(
            "integrated_gradients",
            IntegratedGradients,
            "Integrated Gradients",
            "Gradients averaged along a straight path from the all-zero input (the dataset mean, as inputs are "
            "normalised) to the image.",
        ),
        MethodInfo(
            "deeplift", DeepLift, "DeepLift", "Contributions relative to a zero reference input.", needs_module=True
        ),
        MethodInfo("input_x_gradient", InputXGradient, "Input × Gradient", "The input times its gradient."),
        MethodInfo(
            "occlusion", Occlusion, "Occlusion", "How much the score drops when a patch of the input is blanked out."
        ),
    )
}

LABELS: dict[str, str] = {name: m.label for name, m in METHODS.items()}

# Integrated Gradients: 32 steps of the Gauss-Legendre rule are plenty for these
# small ReLU models and keep a 28x28 batch interactive on 2 CPU cores.
DEFAULT_IG_STEPS = 32


def method_names() -> list[str]:
    """Registry keys of the attribution methods, in menu order."""
    return list(METHODS)


def get_method(name: str) -> MethodInfo:
    """The ``METHODS`` entry for ``name``, with a clear error when unknown."""
    if name not in METHODS:
        raise ValueError(f"Unknown attribution method {name!r}; choose one of {', '.join(METHODS)}.")
    return METHODS[name]


def default_occlusion_window(sample_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(sliding_window_shapes, strides)`` suited to one sample of ``sample_shape``.

    2-D points (or any flat vector): one feature at a time. 8x8 digits: 2x2
    patches, stride 1. 28x28 MNIST: 4x4 patches, stride 2. In general a window of
    about 1/7 of the side with half-window strides.
    """
    if len(sample_shape) == 1:
        return (1,), (1,)
    if len(sample_shape) == 3:
        c, h, w = sample_shape
        side = min(h, w)
        k = 2 if side <= 8 else max(2, round(side / 7))
        s = 1 if side <= 8 else max(1, k // 2)
        return (c, k, k), (c, s, s)
    if len(sample_shape) == 2:
        h, w = sample_shape
        side = min(h, w)
        k = 2 if side <= 8 else max(2, round(side / 7))
        s = 1 if side <= 8 else max(1, k // 2)
        return (k, k), (s, s)
    raise ValueError(f"No default occlusion window for samples of shape {sample_shape}; pass sliding_window_shapes.")


def unshare_modules(model: nn.Module) -> nn.Module:
    """A copy of ``model`` where every module called more than once gets one copy per call.

    Uses ``torch.fx``, traced once per architecture (``layers.once_per_architecture``: a trace patches
    ``nn.Module`` for every thread, so tracing on each call would break other app sessions' forward passes);
    if the model cannot be traced, a plain deep copy is returned.
    """
    plan = once_per_architecture(model, "unshared", _unshare_plan)
    if plan is None:  # untraceable custom model: leave it as it is
        return copy.deepcopy(model)
    graph, extra = plan
    root = copy.deepcopy(model)
    for new_name, target in extra:  # one private copy per further use
        root.add_module(new_name, copy.deepcopy(root.get_submodule(target)))
    return torch.fx.GraphModule(root, copy.deepcopy(graph)) if extra else root


def _unshare_plan(model: nn.Module) -> tuple[torch.fx.Graph, tuple[tuple[str, str], ...]] | None:
    """The traced graph with every further use of a module renamed, and ``(new name, module)`` per rename."""
    try:
        graph = fx_trace(model).graph
    except Exception:  # data-dependent control flow etc.
        return None
    uses = Counter(n.target for n in graph.nodes if n.op == "call_module")
    seen: Counter[str] = Counter()
    extra = []
    for node in graph.nodes:
        if node.op != "call_module" or uses[node.target] < 2:
            continue
        seen[node.target] += 1
        if seen[node.target] == 1:
            continue  # the first use keeps the original module
        new_name = f"{node.target.replace('.', '_')}__use{seen[node.target]}"
        extra.append((new_name, node.target))
        node.target = new_name
    return copy.deepcopy(graph), tuple(extra)  # a copy owned by no module: the cache keeps no model alive


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _dtype(model: nn.Module) -> torch.dtype:
    """The dtype inputs are cast to: the model's floating dtype (a float64 model takes float64), else float32."""
    p = next(model.parameters(), None)
    return p.dtype if p is not None and p.dtype.is_floating_point else torch.float32


def _prepare(model: nn.Module, method: str) -> nn.Module:
    work = unshare_modules(model) if get_method(method).needs_module else copy.deepcopy(model)
    work.eval()
    for p in work.parameters():
        p.requires_grad_(False)  # gradients w.r.t. inputs only
    return work


def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    target: int | torch.Tensor | None = None,
    method: str = "saliency",
    /,
    *,
    device: str | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Attribution of ``target`` to every input entry, same shape as ``inputs``.

    The first four arguments are positional only, so Captum's own keywords,
    Integrated Gradients' ``method="riemann_trapezoid"`` among them, pass through:
    ``attribute(model, x, 3, "integrated_gradients", method="riemann_trapezoid")``; ``target=3`` by
    keyword works too.

    Args:
        model: the model (dense or pruned); it is not modified, not even its
            train/eval mode: an eval-mode copy is used.
        inputs: a batch ``(N, *sample_shape)``.
        target: the class index (int, or ``(N,)`` tensor or list of per-sample classes); needed unless the
            model has one output.
        method: a key of ``METHODS``.
        device: ``"cpu" | "cuda" | "auto"`` to compute on; ``None``: the model's device.
        kwargs: Captum keywords, routed by its signatures: the constructor's
            (``MethodInfo.init_keywords``, e.g. ``multiply_by_inputs``) to the
            constructor, the rest (``MethodInfo.attribute_keywords``) to ``attribute()``.
            Defaults filled in when absent: Integrated Gradients and DeepLift
            ``baselines=0`` (the zero input, i.e. the dataset mean after
            normalisation), IG ``n_steps=32``, Occlusion a window from
            ``default_occlusion_window`` and ``baselines=0``.

    Raises:
        ValueError: an unknown method, a keyword the method does not accept
            (the message lists the ones it does), or a missing or out-of-range target.
    """
    target = _keyword_target(target, kwargs)
    info = get_method(method)
    if kwargs.get("method") in METHODS and "method" not in info.attribute_keywords + info.init_keywords:
        # method= by keyword reached Captum, and saliency said it "does not accept 'method'" (an audit)
        raise ValueError(f"pass the attribution method positionally, after the target: attribute(model, inputs, "
                         f"target, {kwargs['method']!r}); the keyword method= goes to Captum.")
    init_kw, kw = info.split_kwargs(kwargs)
    inputs = as_tensor(inputs)
    if inputs.dim() < 2 or len(inputs) == 0:
        raise ValueError(f"inputs must be a batch of at least one sample (N, ...), got shape {tuple(inputs.shape)}.")
    require_finite(model, "Attribution")  # NaN weights gave NaN maps that compare_attributions scored as similar
    work = _prepare(model, method)
    if device is not None:
        work = work.to(resolve_device(device))
    x = inputs.detach().to(_device(work), _dtype(work)).clone().requires_grad_(True)
    classes = None  # the class count from one sample, where the model needs no further arguments
    if "additional_forward_args" not in kw:
        with torch.no_grad():
            out = work(x[:1])  # (1, classes), or (1,) for one score
        classes = out.shape[-1] if out.dim() > 1 else None
    if target is not None:
        target = _checked_target(target, len(x), classes)
    elif classes is not None and classes > 1:  # Captum's own AssertionError named no class
        raise ValueError(f"target is needed: the model has {classes} outputs; pass the class to explain "
                         "(an int, or one per sample).")
    if method == "integrated_gradients":
        kw.setdefault("baselines", torch.zeros_like(x))
        kw.setdefault("n_steps", DEFAULT_IG_STEPS)
    elif method == "deeplift":
        kw.setdefault("baselines", torch.zeros_like(x))
    elif method == "occlusion":
        if "sliding_window_shapes" not in kw:
            window, strides = default_occlusion_window(tuple(x.shape[1:]))
            kw["sliding_window_shapes"] = window
            kw.setdefault("strides", strides)
        kw.setdefault("baselines", 0.0)
    explainer = info.cls(work, **init_kw)
    with warnings.catch_warnings():
        # DeepLift announces, every call, that it hooks the copy's activations.
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks", category=UserWarning)
        out = explainer.attribute(x, target=target, **kw)
    if isinstance(out, tuple):  # return_convergence_delta=True: keep the attributions
        out = out[0]
    return out.detach().to(inputs.device)


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of a flat array, ties sharing their mean rank."""
    sorter = np.argsort(x, kind="mergesort")
    inv = np.empty_like(sorter)
    inv[sorter] = np.arange(x.size)
    xs = x[sorter]
    first = np.r_[True, xs[1:] != xs[:-1]]
    dense = np.cumsum(first)[inv]
    bounds = np.r_[np.flatnonzero(first), x.size]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def rank_correlation(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Spearman rank correlation of two maps (flattened), ties given average ranks.

    Returns ``nan`` when either map is constant or holds NaN (rank correlation is undefined), as scipy's
    ``spearmanr`` does.
    """
    x = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).ravel()
    y = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"Maps differ in size: {x.size} vs {y.size}.")
    if np.isnan(x).any() or np.isnan(y).any():  # NaN has no rank: each got a distinct one, and NaN maps scored 1.0
        return float("nan")
    rx, ry = _rankdata(x), _rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / denom if denom > 0 else float("nan")


@dataclass(frozen=True, eq=False)
class AttributionComparison:
    """Attributions of a dense and a pruned model on the same inputs."""

    method: str
    dense: torch.Tensor  # (N, *sample_shape)
    pruned: torch.Tensor  # (N, *sample_shape)
    difference: torch.Tensor  # pruned - dense
    similarity: torch.Tensor  # (N,) Spearman rank correlation per sample
    mean_similarity: float  # mean over samples, ignoring nan


def compare_attributions(
    dense_model: nn.Module,
    pruned_model: nn.Module,
    inputs: torch.Tensor,
    target: int | torch.Tensor | None = None,
    method: str = "saliency",
    /,
    *,
    device: str | None = None,
    **kwargs: Any,
) -> AttributionComparison:
    """Both attribution maps, their difference and their per-sample rank correlation.

    Arguments as for ``attribute`` (the first five positional only; ``kwargs`` go to Captum).
    """
    target = _keyword_target(target, kwargs)
    dense = attribute(dense_model, inputs, target, method, device=device, **kwargs)
    pruned = attribute(pruned_model, inputs, target, method, device=device, **kwargs)
    sims = torch.tensor([rank_correlation(d, p) for d, p in zip(dense, pruned)], dtype=torch.float64)
    finite = sims[~torch.isnan(sims)]
    mean = float(finite.mean()) if finite.numel() else float("nan")
    return AttributionComparison(method, dense, pruned, pruned - dense, sims, mean)


def _checked_target(target: Any, n: int, classes: int | None) -> int | torch.Tensor:
    """``target`` as a class index in ``[0, classes)`` (an int, or one per sample): ``ValueError`` otherwise
    (``classes`` None: only ``>= 0`` is checked).

    Captum raised IndexError for 7 of 3 classes, an AssertionError for 1.5, and read -1 as the last class.
    """
    if isinstance(target, (list, tuple)):  # one class per sample, as Captum takes it
        if not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in target):
            raise ValueError(f"target must hold class indices (integers), got {list(target)[:8]!r}.")
        target = torch.tensor(target, dtype=torch.int64)
    if isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(f"target must hold class indices (integers), got a {target.dtype} tensor.")
        if target.dim() > 1 or (target.dim() == 1 and len(target) != n):
            raise ValueError(f"target must be one class or one per sample ({n}), got shape {tuple(target.shape)}.")
        top = classes if classes is not None else math.inf
        if target.numel() and not (0 <= int(target.min()) and int(target.max()) < top):
            raise ValueError(f"target classes must lie in {_span(classes)}, got {target.min().item()} to "
                             f"{target.max().item()}.")
        return target
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise ValueError(f"target must be a class index (an integer), got {target!r}.")
    if not 0 <= int(target) < (classes if classes is not None else math.inf):
        raise ValueError(f"target must be a class in {_span(classes)}, got {int(target)}.")
    return int(target)


def _span(classes: int | None) -> str:
    return f"[0, {classes})" if classes is not None else "[0, the model's classes)"


def _keyword_target(target, kwargs: dict):
    """``target`` given by keyword (``attribute(model, x, target=3)``) is the same argument as given by position."""
    if "target" not in kwargs:
        return target
    if target is not None:
        raise TypeError("attribute() got the target both by position and as target=.")
    return kwargs.pop("target")


@dataclass(frozen=True, eq=False)
class GradientField:
    """Input gradients of a 2-D model on a regular grid (the 2-D toys' attribution view)."""

    xs: torch.Tensor  # (nx,) grid coordinates along feature 0
    ys: torch.Tensor  # (ny,) grid coordinates along feature 1
    grad: torch.Tensor  # (ny, nx, 2) d score / d (x0, x1) at each grid point
    score: torch.Tensor  # (ny, nx) the differentiated score (probability of ``target``)


def gradient_field(
    model: nn.Module,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    target: int = 1,
    resolution: int = 15,
) -> GradientField:
    """Gradient of the probability of ``target`` w.r.t. the 2-D input on a grid.

    Arrows of this field point where the model becomes more sure of ``target``;
    near the decision boundary they are longest. The model is not modified.
    """
    work = _prepare(model, "saliency")
    xs = torch.linspace(float(x_range[0]), float(x_range[1]), resolution)
    ys = torch.linspace(float(y_range[0]), float(y_range[1]), resolution)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(_device(work)).requires_grad_(True)  # (ny*nx, 2)
    with torch.enable_grad():
        prob = torch.softmax(work(pts), dim=1)[:, target]
        (grad,) = torch.autograd.grad(prob.sum(), pts)
    grad, prob = grad.cpu(), prob.detach().cpu()
    return GradientField(xs, ys, grad.reshape(resolution, resolution, 2), prob.reshape(resolution, resolution))
