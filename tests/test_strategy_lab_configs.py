"""The strategy lab's calls: the Compare sweep (one-shot + fine-tuned, skipped strategies) and a schedule run."""

from __future__ import annotations

import pandas as pd
import pytest

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.masks import sparsity
from sparsity_viz.strategy_lab import CompareConfig, ScheduleConfig, compare_sweep, run_schedule, skipped_strategies
from sparsity_viz.training import TrainConfig


@pytest.fixture(scope="module")
def moons():
    model, _ = load_sample("moons_mlp")
    return model, load_dataset("moons")


def test_skipped_means_left_out_by_every_pass():
    ran = pd.DataFrame({"strategy": ["gradual"]})
    ran.attrs["skipped"] = {}
    left = pd.DataFrame({"strategy": ["magnitude"]})
    left.attrs["skipped"] = {"gradual": "needs training", "rigl": "needs training"}
    assert skipped_strategies([left, ran]) == {"rigl": "needs training"}
    assert skipped_strategies([left]) == {"gradual": "needs training", "rigl": "needs training"}


def test_compare_sweep_one_shot_and_fine_tuned(moons):
    model, ds = moons
    config = CompareConfig(("magnitude",), (0.0, 0.5), seeds=1, finetune_epochs=1, random_baseline=False)
    seen = []
    frame = compare_sweep(model, ds, config, TrainConfig(epochs=1, lr=1e-3), progress=lambda f, t: seen.append(f))
    assert sorted(frame["finetuned"].unique()) == [False, True]
    assert len(frame) == 4 and set(frame["strategy"]) == {"magnitude"}
    assert frame.attrs["dense_accuracy"] > 0.5 and not frame.attrs["cancelled"] and frame.attrs["skipped"] == {}
    assert seen[-1] == pytest.approx(1.0)


def test_compare_sweep_stop_keeps_what_finished(moons):
    model, ds = moons
    config = CompareConfig(("magnitude",), (0.0, 0.5, 0.9), random_baseline=False)
    frame = compare_sweep(model, ds, config, stop=lambda: True)
    assert frame.attrs["cancelled"] and len(frame) < 3


def test_schedule_run_trains_to_the_target(moons):
    model, ds = moons
    result = run_schedule(model, ds, ScheduleConfig("gradual", 0.5, epochs=2, lr=1e-3))
    assert sparsity(result.masks) == pytest.approx(0.5, abs=0.05)
    assert len(result.timeline.steps) > 1
