"""How weight pruning, L1, dropout, an activation penalty and k-WTA change LeNet-300-100's activation sparsity.

    python benchmarks/activation_sparsity.py [--epochs 2] [--no-write]

The bundled LeNet-300-100 (MNIST-5k, seeded) is measured on the test split (1,000 inputs) with
``activations.activation_sparsity``: per hidden layer the share of exactly-zero activations
(after ReLU, or after k-WTA) and the dead units (never active on any test input). Settings:

    dense                                the bundled model
    global magnitude 50 / 90 / 99 %      one-shot, no fine-tuning; then the same + ``--epochs`` of fine-tuning
                                         (``recipes.finetune_config``: 1/10 of the card's lr, masks kept)
    fine-tuned dense                     ``--epochs`` of the same fine-tuning, nothing pruned (the control)
    fine-tuned with dropout 0.5          the same, ``TrainConfig(dropout=0.5)``
    fine-tuned with activation L1        the same, with ``ActivationL1Hook(strength)``
    L1-trained (weights)                 ``TrainConfig(regularizer="l1")`` from the bundled model with the
                                         page's L1 recipe (SGD lr 0.05, lambda 3e-3, threshold 0.01), 3 epochs
    k-WTA k = 30 / k = 10                ``with_kwinners`` on the dense model, no training

Everything is seeded (training seed 0), so a rerun gives the same table on the same torch build.
The table goes to docs/activations.md, between the markers.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doc_block import write_block  # noqa: E402 (this script's folder is on sys.path)
from sparsity_viz.activations import activation_sparsity, with_kwinners  # noqa: E402
from sparsity_viz.checkpoints import load_sample  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.masks import masks_from_zeros, sparsity  # noqa: E402
from sparsity_viz.pruning import prune  # noqa: E402
from sparsity_viz.recipes import finetune_config, l1_recipe  # noqa: E402
from sparsity_viz.regularization_hooks import ActivationL1Hook  # noqa: E402
from sparsity_viz.training import TrainConfig, evaluate_dataset, train  # noqa: E402

DOC = ROOT / "docs" / "activations.md"
TABLE = "activations-table"  # the doc's <!-- activations-table:begin/end --> markers
LEVELS = (0.5, 0.9, 0.99)
ACT_L1 = (1e-4, 1e-3)  # strengths of the activation penalty (x the summed |activation| per input)


def measure(setting: str, model: torch.nn.Module, ds) -> dict:
    report = activation_sparsity(model, ds.x_test, ds.y_test)
    fc1, fc2 = report.layer("fc1"), report.layer("fc2")
    return {"setting": setting, "weight_sparsity": sparsity(masks_from_zeros(model)),
            "accuracy": evaluate_dataset(model, ds, device="cpu").accuracy,
            "fc1_zero": fc1.zero_fraction, "fc2_zero": fc2.zero_fraction, "all_zero": report.zero_fraction,
            "fc1_dead": len(fc1.dead), "fc2_dead": len(fc2.dead)}


def run(epochs: int) -> pd.DataFrame:
    torch.manual_seed(0)
    model, card = load_sample("lenet300")
    ds = load_dataset(card["dataset"]["name"], seed=card.get("dataset", {}).get("seed", 0))
    tune = finetune_config(card, epochs, seed=0, device="cpu")
    rows = [measure("dense", model, ds)]
    for level in LEVELS:
        pruned = prune(model, "global_magnitude", level, seed=0)
        rows.append(measure(f"global magnitude {level:.0%}", pruned.model, ds))
        tuned = train(pruned.model, ds, tune, masks=pruned.masks).model
        rows.append(measure(f"global magnitude {level:.0%} + {epochs} epochs fine-tuning", tuned, ds))
    rows.append(measure(f"dense + {epochs} epochs fine-tuning (control)", train(model, ds, tune).model, ds))
    dropout = replace(tune, dropout=0.5)
    rows.append(measure(f"dense + {epochs} epochs fine-tuning, dropout 0.5", train(model, ds, dropout).model, ds))
    for strength in ACT_L1:
        tuned = train(model, ds, tune, hooks=[ActivationL1Hook(strength)]).model
        rows.append(measure(f"dense + {epochs} epochs fine-tuning, activation L1 {strength:g}", tuned, ds))
    r = l1_recipe("lenet300")
    l1 = TrainConfig(epochs=3, lr=r.lr, optimizer="sgd", regularizer="l1", strength=r.strength,
                     zero_threshold=r.zero_threshold, seed=0, device="cpu")
    rows.append(measure(f"L1-trained weights (lambda {r.strength:g}, 3 epochs)", train(model, ds, l1).model, ds))
    for k in (30, 10):
        rows.append(measure(f"k-WTA k = {k} (dense weights)", with_kwinners(model, k), ds))
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| setting | weights zero | accuracy | fc1 zero (300) | fc2 zero (100) | all hidden zero | dead fc1 / fc2 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in frame.itertuples():
        lines.append(f"| {r.setting} | {100 * r.weight_sparsity:.1f} % | {100 * r.accuracy:.1f} % | "
                     f"{100 * r.fc1_zero:.1f} % | {100 * r.fc2_zero:.1f} % | {100 * r.all_zero:.1f} % | "
                     f"{r.fc1_dead} / {r.fc2_dead} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    frame = run(args.epochs)
    table = f"torch {torch.__version__}, CPU, training seed 0.\n\n{markdown(frame)}"
    print(table)
    if not args.no_write:
        write_block(DOC, TABLE, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
