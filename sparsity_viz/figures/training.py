"""Training history: loss, accuracy (train vs test when measured) and sparsity per epoch, side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import LEGEND_BELOW, apply_style, palette


def has_train_eval(history: Sequence[Mapping[str, float]]) -> bool:
    """True when every epoch has ``train_eval_accuracy`` (``TrainConfig.eval_train``)."""
    return bool(history) and all(h.get("train_eval_accuracy") is not None for h in history)


def accuracy_gap(history: Sequence[Mapping[str, float]]) -> float | None:
    """The last epoch's train (eval mode) minus test accuracy, in points; None without train numbers."""
    if not has_train_eval(history):
        return None
    return 100 * (history[-1]["train_eval_accuracy"] - history[-1]["test_accuracy"])


def training_history(history: Sequence[Mapping[str, float]], title: str | None = "Training") -> go.Figure:
    """Three panels over epochs: train/test loss, accuracy (%) and weights pruned (%).

    The accuracy panel shows the test accuracy; when the history also has
    ``train_eval_accuracy`` (the training split in eval mode), it shows both and states
    the last epoch's train - test gap in points (the overfitting gap).

    Args:
        history: one mapping per epoch with ``epoch``, ``train_loss``, ``test_loss``,
            ``test_accuracy`` and ``sparsity`` (fractions), optionally
            ``train_eval_accuracy``, e.g. ``asdict(EpochStats)``.
    """
    both = has_train_eval(history)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.09, subplot_titles=(
        "loss (cross-entropy)", "train vs test accuracy (%)" if both else "test accuracy (%)", "weights pruned (%)"))
    epochs = [h["epoch"] for h in history]
    lines = [
        (1, "train loss", [h["train_loss"] for h in history], "solid", palette(0)),
        (1, "test loss", [h["test_loss"] for h in history], "dash", palette(1)),
        (2, "test accuracy", [100 * h["test_accuracy"] for h in history], "solid", palette(2)),
        (3, "sparsity", [100 * h["sparsity"] for h in history], "solid", palette(3)),
    ]
    if both:  # train in the train colour, dotted: "eval mode" = dropout / DropConnect off
        lines.insert(2, (2, "train accuracy (eval mode)", [100 * h["train_eval_accuracy"] for h in history], "dot",
                         palette(0)))
    for col, name, ys, dash, color in lines:
        fig.add_trace(go.Scatter(x=epochs, y=ys, name=name, mode="lines+markers",
                                 line=dict(color=color, width=3, dash=dash), meta={"kind": name}), row=1, col=col)
    apply_style(fig, title, height=440)
    if both:
        gap = accuracy_gap(history)
        last = history[-1]
        fig.add_annotation(x=epochs[-1], y=50 * (last["train_eval_accuracy"] + last["test_accuracy"]),
                           text=f"gap {gap:+.1f} pts", showarrow=False, xanchor="right", xshift=-8,
                           font=dict(size=16), bgcolor="rgba(255,255,255,0.8)", row=1, col=2, name="gap")
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 12 else None)
    fig.update_yaxes(range=[0, 100], row=1, col=3)
    fig.update_layout(showlegend=True, legend=LEGEND_BELOW)
    return fig
