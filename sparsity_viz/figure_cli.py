"""The ``figure`` CLI command: build one named figure for a bundled model and write it to disk.

Importing this module is cheap (the CLI's parser reads ``FIGURE_KINDS`` for every command): the figure,
sweep and pruning modules load when a figure is built.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from .atomic_write import write_atomically

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from torch import nn

    from .data import Dataset

WRITABLE = (".png", ".svg", ".pdf", ".html")


def _figures():
    """The figures package (Plotly, Captum), imported when a figure is built."""
    from . import figures

    return figures


def _pruned(model: nn.Module, dataset: Dataset, opts):
    from .data import data_batch
    from .pruning import get_one_shot_strategy, prune

    return prune(model, get_one_shot_strategy(opts.strategy, "a figure of one pruned model"), opts.sparsity,
                 batch=data_batch(dataset))


def _layer(model: nn.Module, opts) -> str:
    from .models import prunable_layers

    names = [n for n, _ in prunable_layers(model)]
    layer = opts.layer or names[0]
    if layer not in names:
        raise ValueError(f"Unknown layer {layer!r}; this model has {', '.join(names)}.")
    return layer


def _heatmap(model, dataset, opts) -> go.Figure:
    pruned = _pruned(model, dataset, opts)
    return _figures().layer_heatmap(pruned.model, pruned.masks, _layer(model, opts))


def _histogram(model, dataset, opts) -> go.Figure:
    pruned = _pruned(model, dataset, opts)
    key = f"{_layer(model, opts)}.weight"
    return _figures().weight_histogram(model.get_parameter(key), pruned.model.get_parameter(key), pruned.masks[key])


def _graph(model, dataset, opts) -> go.Figure:
    pruned = _pruned(model, dataset, opts)
    return _figures().model_graph(pruned.model, pruned.masks, input_shape=dataset.input_shape, class_names=dataset.class_names)


def _fanout(model, dataset, opts) -> go.Figure:
    from .connectivity import input_fanout

    pruned = _pruned(model, dataset, opts)
    return _figures().fanout_map(input_fanout(pruned.model, pruned.masks, dataset.input_shape))


def _curves(model, dataset, opts) -> go.Figure:
    from .experiments import sweep

    frame = sweep(model, dataset, opts.strategies, opts.levels)
    for name, reason in frame.attrs["skipped"].items():  # a scheduled strategy needs a training budget
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if frame.empty:
        raise ValueError("Nothing to draw: every strategy given was skipped (see above).")
    return _figures().accuracy_curves(frame, dense_accuracy=frame.attrs["dense_accuracy"])


def _boundary(model, dataset, opts) -> go.Figure:
    if dataset.is_image:
        raise ValueError("The decision boundary needs a 2-D toy model (moons_mlp, circles_mlp, xor_mlp, spiral_mlp).")
    pruned = _pruned(model, dataset, opts)
    return _figures().boundary_comparison(model, pruned.model, dataset.x_test, dataset.y_test, class_names=dataset.class_names)


def _attribution(model, dataset, opts) -> go.Figure:
    from .attribution import compare_attributions

    if not 0 <= opts.sample < len(dataset.y_test):
        raise ValueError(f"--sample must be in [0, {len(dataset.y_test) - 1}].")
    pruned = _pruned(model, dataset, opts)
    x = dataset.x_test[opts.sample : opts.sample + 1]
    target = int(dataset.y_test[opts.sample])
    result = compare_attributions(model, pruned.model, x, target, opts.method)
    return _figures().attribution_maps(
        dataset.denormalize(x[0]) if dataset.is_image else x[0],
        result.dense[0],
        result.pruned[0],
        similarity=result.mean_similarity,
        method=opts.method,
    )


FIGURE_KINDS: dict[str, Callable[[nn.Module, Dataset, SimpleNamespace], go.Figure]] = {
    "heatmap": _heatmap,
    "histogram": _histogram,
    "graph": _graph,
    "fanout": _fanout,
    "curves": _curves,
    "boundary": _boundary,
    "attribution": _attribution,
}


def make_figure(kind: str, model: nn.Module, dataset: Dataset, opts) -> go.Figure:
    """Build the figure ``kind`` (a key of ``FIGURE_KINDS``) from CLI-style options."""
    if kind not in FIGURE_KINDS:
        raise ValueError(f"Unknown figure {kind!r}; choose one of {', '.join(FIGURE_KINDS)}.")
    return FIGURE_KINDS[kind](model, dataset, opts)


def check_figure_path(path: str | Path) -> Path:
    """``path`` when it ends in a suffix ``write_figure`` writes; ``ValueError`` otherwise (checked before any work)."""
    path = Path(path)
    if path.suffix.lower() not in WRITABLE:
        raise ValueError(f"Output must end in {', '.join(WRITABLE)}, got {path.name!r}.")
    return path


def write_figure(fig: go.Figure, path: str | Path) -> Path:
    """Write ``fig`` as HTML (self-contained) or an image through kaleido + chromium."""
    path = check_figure_path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        write_atomically(path, fig.to_html(include_plotlyjs=True))
    else:
        write_atomically(path, fig.to_image(format=suffix[1:], width=1200, height=800))
    return path
