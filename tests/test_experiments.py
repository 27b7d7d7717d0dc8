"""sweep(): one row per point, equal to running that strategy by hand (pruning, or its schedule);
cancel keeps finished points; every executor gives the same rows."""

from __future__ import annotations

import threading
from dataclasses import replace

import copy

import pandas as pd
import pytest
import torch

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.executors import SerialExecutor
from sparsity_viz.data import data_batch
from sparsity_viz.experiments import SWEEP_COLUMNS, summarize, sweep
from sparsity_viz.masks import sparsity as mask_sparsity
from sparsity_viz.models import MLP
from sparsity_viz.pruning import get_strategy, prune
from sparsity_viz.training import TrainConfig, evaluate_dataset, train


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
    with pytest.raises(ValueError, match="Sparsity levels must be distinct"):  # counted twice, it never finished
        sweep(model, data, ["magnitude"], [0.5, 0.5, 0.9])
    # an audit: each of these ran, silently, as something else
    for kwargs, match in [({"scope": "Global"}, "Unknown scope 'Global'"), ({"seeds": [0.9, 1.2]}, "whole numbers"),
                          ({"seeds": [True]}, "whole numbers"), ({"workers": 0}, "workers must be"),
                          ({"workers": -3}, "workers must be")]:
        with pytest.raises(ValueError, match=match):
            sweep(model, data, ["magnitude"], [0.5], **kwargs)
    for strategies, levels in (([], [0.5]), (["magnitude"], [])):
        with pytest.raises(ValueError, match="at least one strategy and one sparsity level"):
            sweep(model, data, strategies, levels)


def test_a_store_never_serves_one_architecture_s_rows_to_another(tmp_path):
    """Equal weights under another activation are another model: another run id (a shared store mixed them)."""
    import copy

    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.models import ACTIVATIONS

    relu, card = load_sample("moons_mlp")
    data = load_dataset(card["dataset"]["name"], seed=card["dataset"].get("seed", 0))
    tanh = copy.deepcopy(relu)
    tanh.act, tanh.activation_name = ACTIVATIONS["tanh"](), "tanh"
    kw = dict(strategies=["magnitude"], levels=[0.0, 0.5], seeds=[0], device="cpu")
    first = sweep(relu, data, store=tmp_path / "store.csv", **kw)
    fresh = sweep(tanh, data, **kw)
    stored = sweep(tanh, data, store=tmp_path / "store.csv", **kw)
    assert stored.attrs["run_id"] != first.attrs["run_id"] and stored.attrs["resumed"] == 0
    assert stored["accuracy"].tolist() == fresh["accuracy"].tolist()


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


# --- scheduled strategies run as scheduled; executors -----------------------------------------

SCHEDULED = ["gradual", "iterative", "set", "rigl"]
LEVELS = [0.0, 0.3, 0.6]
BUDGET = TrainConfig(epochs=1, lr=1e-3)


class _ZeroLogits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.zeros_like(self.model(x))


def zero_logits(model):
    """A picklable evaluator that changes every prediction to class 0 (so its use shows in the accuracy)."""
    return _ZeroLogits(model)


@pytest.fixture(scope="module")
def budget_frame(digits):
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    return model, sweep(model, digits, ["magnitude", *SCHEDULED], LEVELS, seeds=(0, 1), finetune=BUDGET)


def test_every_sweep_point_equals_running_the_strategy_directly(digits, budget_frame):
    model, frame = budget_frame
    assert len(frame) == 5 * len(LEVELS) * 2 and not frame.attrs["cancelled"] and frame.attrs["skipped"] == {}
    dense = evaluate_dataset(model, digits).accuracy
    for row in frame.itertuples():
        config = replace(BUDGET, seed=row.seed, device="cpu")
        if row.kind == "one_shot":
            pruned = prune(model, row.strategy, row.sparsity, seed=row.seed)
            net = train(pruned.model, digits, config, masks=pruned.masks).model if row.sparsity > 0 else pruned.model
            assert row.train_epochs == row.finetune_epochs == (1 if row.sparsity > 0 else 0)
            ran = get_strategy(row.strategy, seed=row.seed).run(model, digits, row.sparsity,
                                                               replace(config, epochs=row.train_epochs))
            assert row.accuracy == evaluate_dataset(ran.model, digits).accuracy, "the one-shot contract's run()"
        elif row.sparsity == 0:  # a scheduled point at level 0 is the dense model
            assert row.accuracy == dense and row.train_epochs == 0
            continue
        else:
            net = get_strategy(row.strategy, seed=row.seed).run(model, digits, row.sparsity, config).model
        assert row.accuracy == evaluate_dataset(net, digits).accuracy, (row.strategy, row.sparsity, row.seed)
    kinds = frame.groupby("strategy")["kind"].unique().map(list).to_dict()
    assert kinds == {"magnitude": ["one_shot"], **{n: ["scheduled"] for n in SCHEDULED}}
    budget = frame[frame.sparsity == 0.6].groupby("strategy")["train_epochs"].max().to_dict()
    assert budget == {"magnitude": 1, "gradual": 1, "set": 1, "rigl": 1, "iterative": 5 + 1}  # IMP: 5 rounds of 20 %


def test_gradual_and_iterative_curves_differ_from_one_shot_magnitude(digits, budget_frame):
    _, frame = budget_frame
    pruned = frame[frame.sparsity > 0]
    magnitude = pruned[pruned.strategy == "magnitude"].accuracy.tolist()
    for name in ("gradual", "iterative"):
        curve = pruned[pruned.strategy == name].accuracy.tolist()
        assert all(a != b for a, b in zip(curve, magnitude)), name
    # the schedule budget alone: one-shot points stay unfine-tuned, scheduled ones train
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    alone = sweep(model, digits, ["magnitude", "gradual"], [0.6], schedule=BUDGET)
    assert alone.set_index("strategy").train_epochs.to_dict() == {"magnitude": 0, "gradual": 1}
    assert alone.accuracy.nunique() == 2


def test_scheduled_strategies_without_a_budget_are_left_out_with_a_reason(digits, digits_model):
    for finetune in (None, TrainConfig(epochs=0)):
        frame = sweep(digits_model, digits, ["magnitude", "gradual", "iterative"], [0.5], finetune=finetune)
        assert set(frame.strategy) == {"magnitude"} and not frame.attrs["cancelled"]
        assert set(frame.attrs["skipped"]) == {"gradual", "iterative"}
        assert "training budget" in frame.attrs["skipped"]["gradual"]


def test_process_executor_keeps_device_evaluator_and_rows(digits, digits_model):
    kw = dict(strategies=["magnitude", "gradual"], levels=[0.0, 0.5], finetune=BUDGET, device="cpu",
              evaluator=zero_logits)
    serial = sweep(digits_model, digits, **kw)
    processes = sweep(digits_model, digits, **kw, executor="process", workers=2)
    chance = int((digits.y_test == 0).sum()) / len(digits.y_test)
    assert set(processes.accuracy) == {chance}, "the evaluator ran in the workers"
    columns = [c for c in SWEEP_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(serial[columns], processes[columns])

    seen = {}

    class Recording(SerialExecutor):
        def map(self, fn, points, *, shared, stop=None):
            seen.update(shared)
            return super().map(fn, points, shared=shared, stop=stop)

    sweep(digits_model, digits, ["magnitude"], [0.5], executor=Recording(), evaluator=zero_logits, device="cpu")
    assert seen["device"] == "cpu" and seen["evaluator"] is zero_logits
    with pytest.raises(TypeError, match="'evaluator'"):
        sweep(digits_model, digits, ["magnitude"], [0.5], executor="process", evaluator=lambda m: m)


# --- seeds: seed-free points computed once; the configuration, the CSV and a re-run ---------------------


def test_unseeded_strategies_give_the_same_masks_for_every_seed(digits, digits_model):
    """``seeded = False`` is a promise the sweep relies on: check it for every such registered strategy."""
    from sparsity_viz.pruning import STRATEGIES

    unseeded = [n for n, cls in STRATEGIES.items() if not cls.seeded]
    assert {"magnitude", "global_magnitude", "structured", "n_m_2_4", "synflow"} <= set(unseeded)
    assert not {"random", "snip", "erdos_renyi", "iterative", "set", "rigl"} & set(unseeded)
    for name in unseeded:
        masks = [get_strategy(name, seed=s).compute_masks(digits_model, 0.7, batch=data_batch(digits, seed=s))
                 for s in (0, 1)]
        assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0]), name


def test_seed_free_points_are_computed_once_and_copied(digits, digits_model, monkeypatch):
    import sparsity_viz.experiments as experiments

    ran = []
    real = experiments.run_point
    monkeypatch.setattr(experiments, "run_point", lambda p, shared, stop=None: ran.append(p) or real(p, shared, stop))
    ft = TrainConfig(epochs=1, lr=1e-3)
    frame = experiments.sweep(digits_model, digits, ["magnitude", "random"], [0.0, 0.5], seeds=[0, 1, 2], finetune=ft)
    # magnitude at 0 % (no training) runs for seed 0 only; its fine-tuned point and every random point run per seed
    assert sorted((p.strategy, p.level, p.seed) for p in ran if p.strategy == "magnitude") == [
        ("magnitude", 0.0, 0), ("magnitude", 0.5, 0), ("magnitude", 0.5, 1), ("magnitude", 0.5, 2)]
    assert len(frame) == 12 and len(ran) == 4 + 6
    copies = frame[frame.replicated]
    assert set(zip(copies.strategy, copies.sparsity, copies.seed)) == {("magnitude", 0.0, 1), ("magnitude", 0.0, 2)}
    assert (copies.seconds == 0).all() and (copies.accuracy == frame.attrs["dense_accuracy"]).all()
    tuned = frame[(frame.strategy == "magnitude") & (frame.sparsity == 0.5)]
    assert not tuned.replicated.any() and tuned.seed.tolist() == [0, 1, 2]


def test_sweep_csv_round_trip_and_rerun_give_the_same_numbers_and_id(tmp_path, digits, digits_model):
    from sparsity_viz.experiments import read_sweep_csv, rerun, sweep_csv

    ft = TrainConfig(epochs=1, lr=1e-3)
    frame = sweep(digits_model, digits, ["magnitude", "snip"], [0.0, 0.5], seeds=[0, 1], finetune=ft)
    path = tmp_path / "sweep.csv"
    path.write_text(sweep_csv(frame))
    back = read_sweep_csv(path)
    assert back.attrs["run_id"] == frame.attrs["run_id"] and back.attrs["config"] == frame.attrs["config"]
    assert back["accuracy"].tolist() == frame["accuracy"].tolist()  # bit for bit through the CSV
    assert pd.read_csv(path, comment="#").shape == frame.shape
    again = rerun(back.attrs["config"], model=digits_model, dataset=digits)
    assert again.attrs["run_id"] == frame.attrs["run_id"]
    assert again["accuracy"].tolist() == frame["accuracy"].tolist()  # fine-tuned points too (CPU)
    other = sweep(digits_model, digits, ["magnitude", "snip"], [0.0, 0.5], seeds=[0, 2], finetune=ft)
    assert other.attrs["run_id"] != frame.attrs["run_id"]


def test_sweep_csv_bad_input(tmp_path, digits, digits_model):
    from sparsity_viz.experiments import read_sweep_csv, rerun, sweep_csv

    frame = sweep(digits_model, digits, ["magnitude"], [0.5], seeds=[0])
    text = sweep_csv(frame)
    assert "\n# levels: [0.5]\n" in text
    edited = text.replace("# levels: [0.5]", "# levels: [0.6]")
    (tmp_path / "edited.csv").write_text(edited)
    with pytest.raises(ValueError, match="the header was edited"):
        read_sweep_csv(tmp_path / "edited.csv")
    frame.to_csv(tmp_path / "plain.csv", index=False)
    with pytest.raises(ValueError, match="no '# key: value' configuration header"):
        read_sweep_csv(tmp_path / "plain.csv")
    with pytest.raises(ValueError, match="names no bundled model"):
        rerun(frame.attrs["config"])
    with pytest.raises(ValueError, match="weights differ"):
        rerun(frame.attrs["config"], model=MLP(64, (32,), 10), dataset=digits)
    with pytest.raises(ValueError, match="distinct"):
        sweep(digits_model, digits, ["magnitude"], [0.5], seeds=[0, 0])


def test_a_sweep_refuses_nan_weights_and_names_a_diverged_point():
    """Found by an audit: a sweep of a NaN model returned rows of chance accuracy, and a diverged point stopped a
    sweep without saying which point."""
    import pytest

    from sparsity_viz.data import load_dataset
    from sparsity_viz.models import build_model
    from sparsity_viz.training import TrainConfig, TrainingDiverged

    moons = load_dataset("moons")
    model = build_model("moons_mlp", seed=0)
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="A sweep needs finite weights"):
        sweep(broken, moons, ["magnitude"], [0.5])
    with pytest.raises(TrainingDiverged, match=r"^gradual \(seed 0\) at 50 %: "):
        sweep(model, moons, ["gradual"], [0.5], schedule=TrainConfig(epochs=2, lr=1e4, optimizer="sgd"))


class _HeadFirst(torch.nn.Module):
    """A chain whose classifier is registered first: registration order is not forward order."""

    def __init__(self):
        super().__init__()
        self.head, self.body, self.mid = torch.nn.Linear(8, 2), torch.nn.Linear(2, 8), torch.nn.Linear(8, 8)

    def forward(self, x):
        return self.head(torch.relu(self.mid(torch.relu(self.body(x)))))


def test_effective_sparsity_follows_the_forward_order_of_a_chain():
    """Found by an audit: the sweep and the strategy profiles connected the layers in registration order, so a
    head-first chain raised 'Cannot connect a layer of 8 units to one of 2 inputs' (or, all 8 wide, read wrong)."""
    from sparsity_viz.comparison import strategy_profiles
    from sparsity_viz.connectivity import effective_masks, effective_sparsity, layer_masks

    torch.manual_seed(0)
    model = _HeadFirst()
    frame = sweep(model, load_dataset("moons"), ["magnitude"], [0.0, 0.9], device="cpu")
    pruned = prune(model, "magnitude", 0.9)
    expected = effective_sparsity(layer_masks(model, pruned.masks))
    assert expected > 0.9  # the 90 % cut leaves weights on no path: effective sparsity is above nominal
    assert frame.set_index("sparsity").loc[0.9, "effective_sparsity"] == pytest.approx(expected)
    profile = strategy_profiles(model, ["magnitude"], 0.9).set_index("layer")
    eff = effective_masks(layer_masks(model, pruned.masks))
    for name, mask in eff.items():
        assert profile.loc[name, "effective_sparsity"] == pytest.approx(1 - int(mask.sum()) / mask.numel())
