"""Training history: loss, test accuracy and sparsity per epoch, side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import apply_style, palette


def training_history(history: Sequence[Mapping[str, float]], title: str | None = "Training") -> go.Figure:
    """Three panels over epochs: train/test loss, test accuracy (%) and weights pruned (%).

    Args:
        history: one mapping per epoch with ``epoch``, ``train_loss``, ``test_loss``,
            ``test_accuracy`` and ``sparsity`` (fractions), e.g. ``asdict(EpochStats)``.
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss (cross-entropy)", "test accuracy (%)", "weights pruned (%)"),
                        horizontal_spacing=0.09)
    epochs = [h["epoch"] for h in history]
    lines = [
        (1, "train loss", [h["train_loss"] for h in history], "solid"),
        (1, "test loss", [h["test_loss"] for h in history], "dash"),
        (2, "test accuracy", [100 * h["test_accuracy"] for h in history], "solid"),
        (3, "sparsity", [100 * h["sparsity"] for h in history], "solid"),
    ]
    for i, (col, name, ys, dash) in enumerate(lines):
        fig.add_trace(go.Scatter(x=epochs, y=ys, name=name, mode="lines+markers",
                                 line=dict(color=palette(i), width=3, dash=dash), meta={"kind": name}), row=1, col=col)
    apply_style(fig, title, height=440)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 12 else None)
    fig.update_yaxes(range=[0, 100], row=1, col=3)
    fig.update_layout(showlegend=True, legend=dict(orientation="h", y=-0.42, yanchor="top"), margin=dict(b=150))
    return fig
