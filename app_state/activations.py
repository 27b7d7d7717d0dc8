"""The Activations page's state: activation-sparsity reports of the dense and the current model, one input's
activations, a layer's value histogram, and the optional k-winners-take-all copy of the current model.

Everything is memoised per model object (and dataset, and what was asked) in this session's
``ACTIVATIONS`` cache. The session's models are only read: ``activation_sparsity`` and friends
run hooks that they remove, and k-WTA runs on ``with_kwinners``'s deep copy. The work is the
library's (``sparsity_viz.activations``).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from sparsity_viz.activations import (
    ActivationReport,
    ValueHistogram,
    activation_sparsity,
    activations_of_input,
    compare_reports,
    per_class_table,
    value_histogram,
    with_kwinners,
)
from sparsity_viz.inference import predict_classes
from sparsity_viz.session import Workbench
from sparsity_viz.training import evaluate_dataset

from . import keys
from .cache import ACTIVATIONS, memo_by_object
from .evaluation import accuracy
from .settings import store, stored
from .workbench import bench, dataset

ACT_DEFAULTS = {"index": 0, "layer": None, "kwta": False, "k": None}


@dataclass(frozen=True, eq=False)
class ActivationsResult:
    """Dense against current (or current with k-WTA): the reports, the per-layer table and the accuracies."""

    dense: ActivationReport
    current: ActivationReport
    table: pd.DataFrame  # activations.compare_reports(dense, current)
    dense_accuracy: float
    current_accuracy: float
    label: str  # what "current" is: "current" or "current + k-WTA (k = 30)"
    k: int | None  # k-WTA's k, None when off
    same: bool  # the current model is the dense one (nothing pruned or trained, no k-WTA)

    @property
    def row(self) -> str:
        """The short name of the compared model in figures: "current" or "k-WTA, k = 30"."""
        return "current" if self.k is None else f"k-WTA, k = {self.k}"


def stored_activations() -> dict:
    return stored(keys.STORED_ACTIVATIONS, ACT_DEFAULTS, {"index": (0, 10**9), "k": (1, 10**6)})  # a link's values too


def store_activations(**settings: Any) -> None:
    store(keys.STORED_ACTIVATIONS, ACT_DEFAULTS, **settings)


def _memo(model: nn.Module, wb: Workbench, what: Hashable, compute) -> Any:
    return memo_by_object(ACTIVATIONS, model, compute, extra=(wb.dataset, what))


def _report(model: nn.Module, wb: Workbench) -> ActivationReport:
    ds = dataset(wb)
    return _memo(model, wb, "report", lambda: activation_sparsity(model, ds.x_test, ds.y_test))


def kwinners_available(wb: Workbench | None = None) -> bool:
    """Whether the current model has the one ``act`` module ``with_kwinners`` replaces (every bundled model does)."""
    return isinstance(getattr((wb or bench()).current, "act", None), nn.Module)


def _compared(k: int | None, wb: Workbench) -> nn.Module:
    """The current model, or its k-WTA copy (memoised per current model and k)."""
    if k is None:
        return wb.current
    return _memo(wb.current, wb, ("kwta", k), lambda: with_kwinners(wb.current, k))


def activation_result(k: int | None = None, wb: Workbench | None = None) -> ActivationsResult:
    """Reports of the dense and the current model (with ``k``: the current model's k-WTA copy) on the test split.

    Raises ``ValueError`` for a k below 1 or a model without an ``act`` module.
    """
    wb = wb or bench()
    if k is not None and (not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be a whole number >= 1, got {k!r}.")
    model = _compared(k, wb)
    dense, current = _report(wb.dense, wb), _report(model, wb)
    ds = dataset(wb)
    acc = accuracy(model, wb) if k is None else _memo(
        model, wb, "accuracy", lambda: float(evaluate_dataset(model, ds, device="cpu").accuracy))
    label = "current" if k is None else f"current + k-WTA (k = {k})"
    return ActivationsResult(dense, current, compare_reports(dense, current), accuracy(wb.dense, wb), float(acc),
                             label, k, same=model is wb.dense)


def split_size(wb: Workbench | None = None) -> int:
    """How many test inputs the page can pick from."""
    return len(dataset(wb or bench()).y_test)


def input_activations(result: ActivationsResult, index: int, wb: Workbench | None = None) -> dict[str, dict]:
    """``{"dense": {layer: activations}, <result.row>: {...}}`` of test input ``index`` (one row when the current
    model is the dense one), for ``figures.activation_heatmaps``."""
    wb = wb or bench()
    x = dataset(wb).x_test[_check_index(index, wb)]
    rows = {"dense": activations_of_input(wb.dense, x)}
    if not result.same:
        rows[result.row] = activations_of_input(_compared(result.k, wb), x)
    return rows


def _check_index(index: int, wb: Workbench) -> int:
    n = split_size(wb)
    if not 0 <= int(index) < n:
        raise ValueError(f"Input {index} is outside the test split (0..{n - 1}).")
    return int(index)


@dataclass(frozen=True)
class InputInfo:
    """What the page shows about the chosen input."""

    index: int
    label: str  # its class name
    predicted_dense: str
    predicted_current: str
    image: np.ndarray | None  # (H, W) raw intensities in [0, 1], image datasets only
    point: tuple[float, ...] | None  # the 2-D toys' coordinates


def input_info(result: ActivationsResult, index: int, wb: Workbench | None = None) -> InputInfo:
    wb = wb or bench()
    ds = dataset(wb)
    i = _check_index(index, wb)
    x = ds.x_test[i : i + 1]
    names = ds.class_names
    dense_pred = predict_classes(wb.dense, x)[0]
    current_pred = predict_classes(_compared(result.k, wb), x)[0]
    image = point = None
    if ds.is_image:  # (C, H, W): channels averaged to one grey picture (C = 2..4 raised on a reshape, an audit)
        pixels = ds.denormalize(x[0]).reshape(ds.input_shape)
        image = (pixels.mean(0) if pixels.dim() == 3 else pixels).clamp(0, 1).numpy()
    else:
        point = tuple(float(v) for v in x[0].flatten())  # a (1, L) sequence too
    return InputInfo(i, names[int(ds.y_test[i])], names[dense_pred], names[current_pred], image, point)


def split_points(wb: Workbench | None = None) -> tuple:
    """``(x_test, y_test, class_names)`` of the session's dataset, for ``figures.input_point``."""
    ds = dataset(wb or bench())
    return ds.x_test, ds.y_test, ds.class_names


def layer_histograms(result: ActivationsResult, layer: str, wb: Workbench | None = None) -> dict[str, ValueHistogram]:
    """``value_histogram`` of ``layer`` on the test split for dense and current, over shared bins (memoised)."""
    wb = wb or bench()
    x = dataset(wb).x_test
    models = {"dense": wb.dense}
    if not result.same:
        models[result.row] = _compared(result.k, wb)
    seen = [r.layer(layer) for r in ((result.dense,) if result.same else (result.dense, result.current))]
    lo_hi = (min(0.0, *(l.min_value for l in seen)), max(0.0, *(l.max_value for l in seen)))  # the reports' range
    return {label: _memo(m, wb, ("histogram", layer, lo_hi),
                         lambda m=m: value_histogram(m, x, layer, value_range=lo_hi)) for label, m in models.items()}


def class_table(result: ActivationsResult, wb: Workbench | None = None) -> pd.DataFrame:
    """Zero share (%) per class and layer, dense and current (``activations.per_class_table``); with k-WTA on, the
    compared columns are named for it (they read "current" while holding the k-WTA copy; an audit)."""
    reports = {"dense": result.dense} if result.same else {"dense": result.dense, result.row: result.current}
    return per_class_table(reports, dataset(wb or bench()).class_names)
