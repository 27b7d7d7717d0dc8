"""Run configurations and run ids: canonical JSON (key order and number spelling do not matter), every field
changes the id, versions are recorded, and the CSV header round-trips."""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest
import torch

import sparsity_viz
from sparsity_viz import run_config as rc
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.training import TrainConfig

FT = TrainConfig(epochs=1, lr=1e-4, batch_size=32)


@pytest.fixture(scope="module")
def moons():
    model, _ = load_sample("moons_mlp")
    return model, load_dataset("moons")


def _config(moons, **changes):
    model, data = changes.pop("model", moons[0]), changes.pop("dataset", moons[1])
    args = dict(strategies=["magnitude", "random"], levels=[0.0, 0.5], seeds=[0, 1, 2])
    kwargs = dict(finetune=FT, schedule=None, scope=None, model_name="moons_mlp")
    for k, v in changes.items():
        (args if k in args else kwargs)[k] = v
    return rc.sweep_config(model, data, **args, **kwargs)


def test_run_id_is_sha256_of_canonical_json():
    assert rc.run_id({}) == hashlib.sha256(b"{}").hexdigest()[:12]
    assert rc.canonical_json({"b": [1, 0.5], "a": None}) == '{"a":null,"b":[1,0.5]}'
    assert rc.run_id({"b": [1, 0.5], "a": None}) == hashlib.sha256(b'{"a":null,"b":[1,0.5]}').hexdigest()[:12]


def test_key_order_and_number_spelling_do_not_change_the_id():
    a = {"levels": [0.0, 0.5, 1.0], "finetune": {"lr": 0.001, "epochs": 2}, "seeds": (0, 1)}
    b = {"seeds": [np.int64(0), 1], "finetune": {"epochs": 2.0, "lr": 1e-3}, "levels": [0, np.float64(0.50), 1]}
    assert rc.run_id(a) == rc.run_id(b)
    assert rc.run_id(a) != rc.run_id({**a, "levels": [0.0, 0.5, 0.9]})


def test_the_configuration_states_everything(moons):
    config = _config(moons)
    assert list(config) == list(rc.CONFIG_KEYS)
    assert config["versions"] == {"sparsity_viz": sparsity_viz.__version__, "torch": torch.__version__}
    assert config["model"]["name"] == "moons_mlp" and len(config["model"]["fingerprint"]) == 16
    assert config["dataset"]["name"] == "moons" and config["dataset"]["params"]["noise"] == 0.1
    assert config["finetune"]["lr"] == 1e-4 and config["finetune"]["batch_size"] == 32
    assert "device" not in config["finetune"] and "seed" not in config["finetune"]  # the sweep sets them
    iterative = _config(moons, strategies=["iterative"], scope="global")["strategies"][0]
    assert iterative == {"name": "iterative", "kind": "scheduled", "scope": "global",
                         "params": {"include_bias": False, "rate": 0.2, "output_rate": 0.1, "rewind_step": 0,
                                    "control": "rewind"}}


def test_every_field_changes_the_id(moons, monkeypatch):
    model, data = moons
    base = rc.run_id(_config(moons))
    # the device a TrainConfig names is not part of it (the sweep decides where points run), nor is its seed
    assert rc.run_id(_config(moons, finetune=TrainConfig(epochs=1, lr=1e-4, batch_size=32, device="cpu",
                                                         seed=5))) == base
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        next(perturbed.parameters())[0, 0] += 1e-6
    variants = {
        "model weights": _config(moons, model=perturbed),
        "model name": _config(moons, model_name="other"),
        "dataset": _config(moons, dataset=load_dataset("moons", seed=1)),
        "strategies": _config(moons, strategies=["magnitude", "snip"]),
        "strategy order": _config(moons, strategies=["random", "magnitude"]),
        "levels": _config(moons, levels=[0.0, 0.6]),
        "seeds": _config(moons, seeds=[0, 1]),
        "scope": _config(moons, scope="global"),
        "fine-tuning epochs": _config(moons, finetune=TrainConfig(epochs=2, lr=1e-4, batch_size=32)),
        "fine-tuning lr": _config(moons, finetune=TrainConfig(epochs=1, lr=2e-4, batch_size=32)),
        "no fine-tuning": _config(moons, finetune=None),
        "schedule": _config(moons, schedule=FT),
        "extra": _config(moons, extra={"passes": ["one_shot", "finetuned"]}),
    }
    monkeypatch.setattr(sparsity_viz, "__version__", "9.9.9")
    variants["package version"] = _config(moons)
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    variants["torch version"] = _config(moons)
    ids = {name: rc.run_id(c) for name, c in variants.items()}
    assert base not in ids.values(), [n for n, i in ids.items() if i == base]
    assert len(set(ids.values())) == len(ids)


def test_header_round_trip(moons):
    config = _config(moons)
    lines = rc.header_lines(config)
    assert lines[0] == f"# run_id: {rc.run_id(config)}" and lines[1].startswith("# model: {")
    back, stated = rc.read_header([*lines, "strategy,accuracy", "magnitude,0.5"])
    assert back == config and stated == rc.run_id(config)


def test_bad_input_gets_a_clear_message(moons):
    with pytest.raises(ValueError, match="not '# key: value'"):
        rc.read_header(["# no separator here"])
    with pytest.raises(ValueError, match="not valid JSON"):
        rc.read_header(["# levels: [0, 0.5"])
    with pytest.raises(ValueError, match="plain data only"):
        rc.canonical({"model": object()})
    with pytest.raises(ValueError, match="may not replace"):
        _config(moons, extra={"seeds": [7]})
    with pytest.raises(ValueError, match="configuration dict"):
        rc.run_id(["not", "a", "dict"])
