"""What a router does with a dataset, as plain data: class x expert counts, load, balance, parameters."""

from __future__ import annotations

import pandas as pd
import torch

from ..data import Dataset
from ..models import count_parameters
from .compute import active_parameters, flops_per_input, total_parameters
from .model import MoEMLP, routing


def routing_table(model: MoEMLP, x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """``(classes, experts)`` int64: how many inputs of each class chose each expert (each of its top-k counts)."""
    r = routing(model, x)
    classes = num_classes if num_classes is not None else model.num_classes
    k = r.experts.shape[1]
    pairs = y.repeat_interleave(k) * model.num_experts + r.experts.reshape(-1)
    return torch.bincount(pairs, minlength=classes * model.num_experts).reshape(classes, model.num_experts)


@torch.no_grad()
def expert_report(model: MoEMLP, dataset: Dataset, split: str = "test") -> dict:
    """Routing of a split as JSON-ready data: table, load, balance loss, accuracy, parameters, FLOPs."""
    if split not in ("test", "train"):
        raise ValueError("split must be 'test' or 'train'.")
    x, y = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_train, dataset.y_train)
    if len(x) and x[0].numel() != model.in_features:
        raise ValueError(f"{dataset.name} has samples of {x[0].numel()} values; this MoE takes {model.in_features}.")
    if len(dataset.class_names) > model.num_classes or (len(y) and int(y.max()) >= model.num_classes):
        # labels the model cannot output: its accuracy read 0.0 without a word (an audit)
        raise ValueError(f"{dataset.name} has {len(dataset.class_names)} classes; this MoE gives "
                         f"{model.num_classes} class scores.")
    was_training = model.training
    model.eval()
    try:
        r = routing(model, x)
        accuracy = float((model(x).argmax(1) == y).float().mean()) if len(y) else float("nan")
    finally:
        model.train(was_training)
    table = routing_table(model, x, y, len(dataset.class_names))
    return {
        "split": split,
        "inputs": len(y),
        "num_experts": model.num_experts,
        "top_k": model.top_k,
        "classes": list(dataset.class_names),
        "routing_table": table.tolist(),
        "load": r.load.tolist(),
        "load_fraction": (r.load.double() / max(r.load.sum().item(), 1)).tolist(),
        "balance_loss": float(r.balance_loss),
        "accuracy": accuracy,
        "active_parameters": active_parameters(model),
        "total_parameters": total_parameters(model),
        "router_parameters": count_parameters(model.router),
        "expert_parameters": count_parameters(model.experts[0]),
        "flops_per_input": flops_per_input(model),
        "flops_per_input_all_experts": flops_per_input(model, all_experts=True),
    }


def routing_frame(report: dict) -> pd.DataFrame:
    """``expert_report``'s class x expert table as a frame: a ``class`` column, one column per expert, ``total``."""
    n = report["num_experts"]
    frame = pd.DataFrame(report["routing_table"], columns=[f"expert {e}" for e in range(n)])
    frame.insert(0, "class", [str(c) for c in report["classes"]])
    frame["total"] = frame[[f"expert {e}" for e in range(n)]].sum(axis=1)
    load = {"class": "all (load)", **{f"expert {e}": int(v) for e, v in enumerate(report["load"])},
            "total": int(sum(report["load"]))}
    return pd.concat([frame, pd.DataFrame([load])], ignore_index=True)
