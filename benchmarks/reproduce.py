"""Reproductions of published pruning and regularisation results on LeNet-300-100 / MNIST-5k.

    python benchmarks/reproduce.py han           # Han et al. 2015: global magnitude + fine-tuning, 12x
    python benchmarks/reproduce.py lottery       # Frankle & Carbin 2019: IMP + rewinding vs controls
    python benchmarks/reproduce.py random_floor  # Blalock et al. 2020: random pruning is the floor
    python benchmarks/reproduce.py dropout       # Srivastava 2014 / Wan 2013: dropout, DropConnect on a small split
    python benchmarks/reproduce.py all

Each writes a CSV (and a PNG, where a figure helps) under docs/reproductions/ and prints a verdict;
docs/reproductions.md records the commands and the results. One torch thread
(measured fastest on this 2-core machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "reproductions"

from sparsity_viz import build_model, load_dataset, load_sample  # noqa: E402
from sparsity_viz.comparison import strategy_profiles  # noqa: E402
from sparsity_viz.experiments import summarize, sweep  # noqa: E402
from sparsity_viz.lottery import METHOD_LABELS, LotteryConfig, lottery_experiment, ticket_advantage  # noqa: E402
from sparsity_viz.training import TrainConfig  # noqa: E402


def _figure(summary: pd.DataFrame, title: str, path: Path, dense: float, log_x: bool = True) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for (name, ft), g in summary.groupby(["strategy", "finetune_epochs"], sort=False):
        g = g[g.sparsity > 0].sort_values("sparsity")
        label = f"{name}" + (f" + {ft} ep fine-tune" if ft else "")
        fig.add_trace(go.Scatter(x=g.compression, y=100 * g["mean"], error_y=dict(array=100 * g["std"]),
                                 mode="lines+markers", name=label))
    fig.add_hline(y=100 * dense, line_dash="dash", annotation_text=f"dense {100 * dense:.1f} %")
    fig.update_layout(title=title, xaxis_title="compression ratio (dense / remaining weights)",
                      yaxis_title="test accuracy (%)", template="plotly_white", width=900, height=550)
    if log_x:
        fig.update_xaxes(type="log")
    fig.write_image(str(path))


def han(seeds=(0, 1, 2)) -> pd.DataFrame:
    model, card = load_sample("lenet300")
    ds = load_dataset("mnist5k")
    levels = [0.0, 0.5, 0.8, 0.9, 0.917, 0.95, 0.97, 0.98, 0.99]
    short = TrainConfig(epochs=5, lr=1e-4, batch_size=64)  # Han: retrain at 1/10 of the training rate (1e-3)
    longer = TrainConfig(epochs=10, lr=3e-4, batch_size=64)  # a longer retraining at 0.3x the training rate
    t = time.perf_counter()
    frames = [sweep(model, ds, ["global_magnitude", "magnitude"], levels, seeds, baselines=True),
              sweep(model, ds, ["global_magnitude", "magnitude"], levels, seeds, finetune=short, baselines=True),
              sweep(model, ds, ["global_magnitude", "magnitude"], levels, seeds, finetune=longer, baselines=True)]
    frame = pd.concat(frames, ignore_index=True)
    frame.to_csv(OUT / "han_lenet300.csv", index=False)
    dense = frames[0].attrs["dense_accuracy"]
    summary = summarize(frame)
    summary.to_csv(OUT / "han_lenet300_summary.csv", index=False)
    _figure(summary, "LeNet-300-100 / MNIST-5k: magnitude pruning with and without fine-tuning (3 seeds)",
            OUT / "han_lenet300.png", dense)
    profile = strategy_profiles(model, ["global_magnitude"], 0.917)
    profile.to_csv(OUT / "han_lenet300_layers_12x.csv", index=False)
    print(f"dense accuracy {dense:.4f}; {time.perf_counter() - t:.0f} s")
    for epochs in (0, 5, 10):
        g = summary[(summary.strategy == "global_magnitude") & (summary.finetune_epochs == epochs)]
        print(f"global magnitude, {epochs} fine-tuning epochs:")
        print(g[["sparsity", "compression", "mean", "std"]].to_string(index=False))
        ok = g[g.sparsity >= 0.9]
        print("  within 0.5 points of dense at:",
              [f"{s:.3f}" for s, m in zip(ok.sparsity, ok["mean"]) if dense - m <= 0.005])
    print("kept per layer at 12x:", dict(zip(profile.layer, (1 - profile.sparsity).round(3))))
    return frame


def lottery(seeds=(0, 1, 2)) -> pd.DataFrame:
    ds = load_dataset("mnist5k")
    cfg = LotteryConfig(rounds=14)
    frames = []
    t = time.perf_counter()
    for seed in seeds:
        init = build_model("lenet300", seed=seed)
        f = lottery_experiment(init, ds, LotteryConfig(**{**cfg.__dict__, "seed": seed}))
        frames.append(f)
    frame = pd.concat(frames, ignore_index=True)
    frame.to_csv(OUT / "lottery_lenet300.csv", index=False)
    import plotly.graph_objects as go

    summary = frame.groupby(["method", "round"], as_index=False).agg(
        remaining=("remaining", "mean"), mean=("best_accuracy", "mean"), std=("best_accuracy", "std"),
        final=("test_accuracy", "mean"))
    summary.to_csv(OUT / "lottery_lenet300_summary.csv", index=False)
    fig = go.Figure()
    for method, g in summary.groupby("method", sort=False):
        fig.add_trace(go.Scatter(x=100 * g.remaining, y=100 * g["mean"], error_y=dict(array=100 * g["std"]),
                                 mode="lines+markers", name=METHOD_LABELS[method]))
    fig.update_layout(title="Lottery tickets, LeNet-300-100 / MNIST-5k (3 inits; best test accuracy over 3 epochs per round)",
                      xaxis_title="weights remaining (%)", yaxis_title="test accuracy (%)",
                      template="plotly_white", width=900, height=550)
    fig.update_xaxes(type="log", autorange="reversed")
    fig.write_image(str(OUT / "lottery_lenet300.png"))
    adv = ticket_advantage(frame)
    adv.to_csv(OUT / "lottery_lenet300_advantage.csv", index=False)
    print(f"{time.perf_counter() - t:.0f} s")
    print(summary.pivot_table(index="round", columns="method", values="mean").round(4).to_string())
    print(adv.round(4).to_string(index=False))
    return frame


def random_floor(seeds=(0, 1, 2)) -> pd.DataFrame:
    model, _ = load_sample("lenet300")
    ds = load_dataset("mnist5k")
    names = ["magnitude", "global_magnitude", "n_m_2_4", "n_m_1_4", "snip", "taylor", "synflow", "grasp",
             "erdos_renyi", "structured", "random"]
    levels = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
    t = time.perf_counter()
    frames = [sweep(model, ds, names, levels, seeds, baselines=True),
              sweep(model, ds, names, levels, seeds, finetune=TrainConfig(epochs=1, lr=1e-4), baselines=True)]
    frame = pd.concat(frames, ignore_index=True)
    frame.to_csv(OUT / "random_floor_lenet300.csv", index=False)
    summary = summarize(frame)
    summary.to_csv(OUT / "random_floor_lenet300_summary.csv", index=False)
    dense = frames[0].attrs["dense_accuracy"]
    for ft in (0, 1):
        sub = summary[(summary.finetune_epochs == ft) | (summary.sparsity == 0)]
        _figure(sub, f"One-shot strategies on trained LeNet-300-100, {'no' if ft == 0 else '1 epoch'} fine-tuning (3 seeds)",
                OUT / f"random_floor_ft{ft}.png", dense)
    print(f"{time.perf_counter() - t:.0f} s")
    for ft in (0, 1):
        sub = summary[(summary.finetune_epochs == ft) & (summary.sparsity > 0)]
        wide = sub.pivot_table(index="sparsity", columns="strategy", values="mean")
        print(f"fine-tune epochs {ft}:\n{wide.round(3).to_string()}")
        below = {s: [lvl for lvl in wide.index if wide.loc[lvl, s] < wide.loc[lvl, "random"]] for s in wide if s != "random"}
        print("levels where a strategy is BELOW random:", {k: v for k, v in below.items() if v})
    return frame


DROPOUT_VARIANTS = {"plain": {}, "dropout 0.5": {"dropout": 0.5}, "DropConnect 0.5": {"dropconnect": 0.5}}


def dropout(seeds=(0, 1, 2), fraction: float = 0.1, epochs: int = 30) -> pd.DataFrame:
    """LeNet-300-100 from scratch on ``fraction`` of MNIST-5k's training split: plain vs dropout vs DropConnect.

    Train accuracy is measured in eval mode (``TrainConfig.eval_train``), on the samples trained on.
    """
    from sparsity_viz.training import train

    ds = load_dataset("mnist5k")
    rows = []
    t = time.perf_counter()
    for seed in seeds:
        for variant, rates in DROPOUT_VARIANTS.items():  # interleaved: every seed runs all three
            config = TrainConfig(epochs=epochs, lr=1e-3, batch_size=64, seed=seed, train_fraction=fraction,
                                 eval_train=True, **rates)
            h = train(build_model("lenet300", seed=seed), ds, config).history[-1]
            rows.append({"variant": variant, "seed": seed, "train_fraction": fraction, "epochs": epochs,
                         "train_accuracy": h.train_eval_accuracy, "test_accuracy": h.test_accuracy,
                         "gap": h.train_eval_accuracy - h.test_accuracy, "test_loss": h.test_loss})
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "dropout_lenet300.csv", index=False)
    summary = frame.groupby("variant", sort=False).agg(
        **{f"{c}_{s}": (c, s) for c in ("train_accuracy", "test_accuracy", "gap", "test_loss")
           for s in ("mean", "std")})
    summary.reset_index().to_csv(OUT / "dropout_lenet300_summary.csv", index=False)
    print(f"{len(frame)} runs, {time.perf_counter() - t:.0f} s; {int(fraction * 100)} % of the training split, "
          f"{epochs} epochs Adam lr 1e-3")
    print("| variant | train accuracy (eval mode) | test accuracy | gap (points) | test loss |")
    print("|---|---|---|---|---|")
    for variant, r in summary.iterrows():
        print(f"| {variant} | {100 * r.train_accuracy_mean:.1f} ± {100 * r.train_accuracy_std:.1f} % "
              f"| {100 * r.test_accuracy_mean:.1f} ± {100 * r.test_accuracy_std:.1f} % "
              f"| {100 * r.gap_mean:.1f} ± {100 * r.gap_std:.1f} | {r.test_loss_mean:.3f} ± {r.test_loss_std:.3f} |")
    wide = frame.pivot(index="seed", columns="variant")  # paired by seed: same init, same subset
    for variant in list(DROPOUT_VARIANTS)[1:]:
        d_gap = 100 * (wide["gap", variant] - wide["gap", "plain"])
        d_acc = 100 * (wide["test_accuracy", variant] - wide["test_accuracy", "plain"])
        print(f"{variant} vs plain, paired by seed: gap {d_gap.mean():+.1f} ± {d_gap.std():.1f} points "
              f"({(d_gap < 0).sum()} of {len(d_gap)} seeds narrower), test accuracy {d_acc.mean():+.1f} ± "
              f"{d_acc.std():.1f} points ({(d_acc > 0).sum()} of {len(d_acc)} seeds higher)")
    return frame


if __name__ == "__main__":
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["han", "lottery", "random_floor", "dropout", "all"])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in (["han", "lottery", "random_floor", "dropout"] if args.which == "all" else [args.which]):
        print(f"== {name}")
        globals()[name]()
