"""sweep(): one row per point, equal to pruning + evaluating by hand; cancel keeps finished points."""

from __future__ import annotations

import threading

import pytest
import torch

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.experiments import SWEEP_COLUMNS, data_batch, summarize, sweep
from sparsity_viz.masks import sparsity as mask_sparsity
from sparsity_viz.models import MLP
from sparsity_viz.pruning import prune
from sparsity_viz.training import TrainConfig, evaluate_dataset


@pytest.fixture(scope="module")
def digits_setup():
    model, _ = load_sample("digits_mlp")
    return model, load_dataset("digits")


def test_sweep_rows_equal_manual_points(digits_setup):
    model, data = digits_setup
    frame = sweep(model, data, ["magnitude", "random"], [0.0, 0.5, 0.9], seeds=[0, 1])
    assert list(frame.columns) == SWEEP_COLUMNS
    assert len(frame) == 2 * 3 * 2
    for row in frame.itertuples():
        manual = evaluate_dataset(prune(model, row.strategy, row.sparsity, seed=row.seed).model, data)
        assert row.accuracy == manual.accuracy
        assert row.achieved_sparsity == pytest.approx(row.sparsity, abs=1e-3)
    assert frame.attrs["dense_accuracy"] == evaluate_dataset(model, data).accuracy
    assert not frame.attrs["cancelled"]
    random_rows = frame[(frame.strategy == "random") & (frame.sparsity == 0.9)]
    assert random_rows.accuracy.nunique() == 2, "different seeds give different random masks"


def test_summarize_mean_and_band(digits_setup):
    model, data = digits_setup
    frame = sweep(model, data, ["random"], [0.5], seeds=[0, 1, 2])
    summary = summarize(frame)
    assert summary.loc[0, "mean"] == pytest.approx(frame.accuracy.mean())
    assert summary.loc[0, "min"] == frame.accuracy.min()
    assert summary.loc[0, "seeds"] == 3


def test_finetuning_recovers_accuracy(digits_setup):
    model, data = digits_setup
    frame = sweep(model, data, ["magnitude"], [0.9], finetune=TrainConfig(epochs=3, lr=3e-4))
    one_shot = sweep(model, data, ["magnitude"], [0.9])
    assert frame.finetune_epochs.iloc[0] == 3
    assert frame.accuracy.iloc[0] > one_shot.accuracy.iloc[0]


def test_cancel_keeps_finished_points(digits_setup):
    model, data = digits_setup
    done = []

    def progress(fraction, row):
        done.append(fraction)

    frame = sweep(model, data, ["magnitude"], [0.1, 0.2, 0.3, 0.4], progress=progress, stop=lambda: len(done) >= 2)
    assert len(frame) == 2
    assert frame.attrs["cancelled"]
    assert done == [0.25, 0.5]


def test_bad_inputs_fail_before_work(digits_setup):
    model, data = digits_setup
    with pytest.raises(ValueError, match="Unknown strategy"):
        sweep(model, data, ["nope"], [0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sweep(model, data, ["magnitude"], [1.5])


# --- the one-ranking engine, on a random-init MLP (no ties among scores) ---------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def digits_model():
    torch.manual_seed(0)
    return MLP(64, (32,), 10)


def test_sweep_matches_pruning_point_by_point(digits, digits_model):
    """The one-ranking fast path gives exactly what prune() + evaluate() give for every point."""
    names = ["magnitude", "global_magnitude", "n_m_2_4", "snip", "structured", "erdos_renyi"]
    levels = [0.0, 0.5, 0.9]
    fast = sweep(digits_model, digits, names, levels, seeds=(0, 1), baselines=True)
    for row in fast.itertuples():
        batch = data_batch(digits, seed=row.seed)
        pruned = prune(digits_model, row.strategy, row.sparsity, seed=row.seed, batch=batch)
        assert row.accuracy == evaluate_dataset(pruned.model, digits).accuracy, (row.strategy, row.sparsity)
        assert row.achieved_sparsity == pytest.approx(mask_sparsity(pruned.masks), abs=1e-9)
    assert "random" in set(fast.strategy)
    assert fast.attrs["dense_accuracy"] == evaluate_dataset(digits_model, digits).accuracy
    assert list(sweep(digits_model, digits, ["magnitude"], levels).strategy.unique()) == ["magnitude"]
    summary = summarize(fast)
    assert {"mean", "std", "compression", "effective_sparsity"} <= set(summary.columns)
    row = summary[(summary.strategy == "magnitude") & (summary.sparsity == 0.9)].iloc[0]
    assert row.compression == pytest.approx(10.0, rel=0.01) and row.seeds == 2


def test_sweep_finetune_and_cancel_keeps_finished_points(digits, digits_model):
    ft = TrainConfig(epochs=1, lr=1e-3)
    stop = threading.Event()
    seen = []

    def progress(frac, row):
        seen.append(row)
        if len(seen) == 3:
            stop.set()

    frame = sweep(digits_model, digits, ["magnitude"], [0.0, 0.5, 0.8, 0.9], finetune=ft,
                  baselines=False, progress=progress, stop=stop)
    assert frame.attrs["cancelled"] and len(frame) == 3
    assert frame.finetune_epochs.tolist() == [0, 1, 1]


def test_sweep_in_two_processes_gives_the_same_rows(digits, digits_model):
    ft = TrainConfig(epochs=1, lr=1e-3)
    serial = sweep(digits_model, digits, ["magnitude"], [0.0, 0.5, 0.9], finetune=ft, baselines=False)
    parallel = sweep(digits_model, digits, ["magnitude"], [0.0, 0.5, 0.9], finetune=ft, baselines=False,
                     workers=2)
    assert serial.accuracy.tolist() == parallel.accuracy.tolist()
