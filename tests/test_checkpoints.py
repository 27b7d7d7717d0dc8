"""Checkpoints: bit-exact round trips, clear errors, and no code execution from uploads."""

from __future__ import annotations

import io
import os
import pickle

import pytest
import torch
from safetensors.torch import save as st_save

import sparsity_viz.checkpoints as ckpt
from sparsity_viz import CheckpointError, available_samples, build_model, load_checkpoint_bytes, load_sample, save_model
from sparsity_viz.checkpoints import base_card, read_state_dict, state_dict_to_bytes


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def _pt_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# --- round trips ----------------------------------------------------------------------------


def test_save_model_then_load_bytes_is_bit_exact(tmp_path, lenet300):
    path = save_model(lenet300, tmp_path / "sub" / "mine")
    assert path == tmp_path / "sub" / "mine.safetensors" and path.exists()
    assert not path.with_suffix(".json").exists()  # no card asked for
    loaded = load_checkpoint_bytes(path.read_bytes(), "lenet300", path.name)
    _assert_same_state(lenet300, loaded)
    assert not loaded.training  # ready for inference
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(lenet300.eval()(x), loaded(x))


@pytest.mark.parametrize("name", ["moons_mlp", "digits_mlp", "lenet5"])
def test_every_architecture_round_trips_through_bytes(name):
    model = build_model(name, seed=3)
    loaded = load_checkpoint_bytes(state_dict_to_bytes(model), name)
    _assert_same_state(model, loaded)


def test_sample_round_trip_with_card(tmp_path):
    model = build_model("xor_mlp", seed=1)
    card = base_card("xor_mlp", model) | {"test_accuracy": 0.5}
    save_model(model, tmp_path / "xor_mlp", card=card)
    assert available_samples(tmp_path) == ["xor_mlp"]
    loaded, card_back = load_sample("xor_mlp", tmp_path)
    assert card_back == card
    _assert_same_state(model, loaded)
    with pytest.raises(CheckpointError, match="train-samples"):
        load_sample("moons_mlp", tmp_path)


def test_pt_weights_only_state_dict_loads(tmp_path):
    model = build_model("digits_mlp", seed=2)
    loaded = load_checkpoint_bytes(_pt_bytes(model.state_dict()), "digits_mlp", "weights.pt")
    _assert_same_state(model, loaded)
    wrapped = _pt_bytes({"state_dict": model.state_dict(), "epoch": 3})
    _assert_same_state(model, load_checkpoint_bytes(wrapped, "digits_mlp", "wrapped.pth"))


def test_other_dtypes_are_converted_to_the_models():
    model = build_model("moons_mlp", seed=0)
    doubles = {k: v.double() for k, v in model.state_dict().items()}
    loaded = load_checkpoint_bytes(st_save(doubles), "moons_mlp")
    _assert_same_state(model, loaded)


# --- errors ---------------------------------------------------------------------------------


def test_wrong_architecture_names_key_and_shapes():
    data = state_dict_to_bytes(build_model("digits_mlp", seed=0))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_bytes(data, "lenet300", "digits.safetensors")
    msg = str(info.value)
    assert "digits.safetensors" in msg
    assert "fc1.weight" in msg and "(32, 64)" in msg and "(300, 784)" in msg
    assert "fc3.weight" in msg  # missing from the digits checkpoint


def test_unexpected_key_is_named():
    state = dict(build_model("moons_mlp", seed=0).state_dict())
    state["fc9.weight"] = torch.zeros(2, 2)
    with pytest.raises(CheckpointError, match=r"unexpected fc9\.weight"):
        load_checkpoint_bytes(st_save(state), "moons_mlp")


@pytest.mark.parametrize("filename", ["x.safetensors", "x.pt"])
def test_empty_file_raises(filename):
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint_bytes(b"", "moons_mlp", filename)


@pytest.mark.parametrize("filename", ["m.safetensors", "m.pt"])
@pytest.mark.parametrize("damage", ["truncate", "corrupt", "garbage"])
def test_truncated_or_corrupt_bytes_raise(filename, damage):
    model = build_model("moons_mlp", seed=0)
    data = _pt_bytes(model.state_dict()) if filename.endswith(".pt") else state_dict_to_bytes(model)
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "corrupt":
        data = b"\xff" * 16 + data[16:]
    else:
        data = b"this is not a checkpoint at all"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_bytes(data, "moons_mlp", filename)
    assert filename in str(info.value)


def test_too_large_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(ckpt, "MAX_CHECKPOINT_BYTES", 100)
    with pytest.raises(CheckpointError, match="limit"):
        read_state_dict(b"\0" * 101, "big.safetensors")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_raise(bad):
    state = dict(build_model("moons_mlp", seed=0).state_dict())
    state["fc2.weight"] = state["fc2.weight"].clone()
    state["fc2.weight"][0, 0] = bad
    with pytest.raises(CheckpointError, match=r"NaN.*fc2\.weight"):
        load_checkpoint_bytes(st_save(state), "moons_mlp")


def test_pt_that_is_not_a_state_dict_raises():
    with pytest.raises(CheckpointError, match="dict of tensors"):
        load_checkpoint_bytes(_pt_bytes({"fc1.weight": [1, 2, 3]}), "moons_mlp", "list.pt")
    with pytest.raises(CheckpointError, match="dict of tensors"):
        load_checkpoint_bytes(_pt_bytes(torch.zeros(3)), "moons_mlp", "tensor.pt")


# --- pickles that try to run code ---------------------------------------------------------------


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _ExecPayload:
    """Unpickling this runs Python that creates ``marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _malicious(kind: str, marker) -> bytes:
    payload = _Payload(str(marker)) if kind.startswith("system") else _ExecPayload(str(marker))
    obj = {"fc1.weight": torch.zeros(8, 2), "evil": payload}
    if kind.endswith("zip"):
        return _pt_bytes(obj)  # torch.save's zip format
    return pickle.dumps(obj, protocol=2)  # a bare (legacy) pickle


@pytest.mark.parametrize("kind", ["system-zip", "system-legacy", "exec-zip", "exec-legacy"])
@pytest.mark.parametrize("filename", ["evil.pt", "evil.pth", "evil.bin", "evil.safetensors"])
def test_code_running_pickle_is_refused_and_never_runs(tmp_path, kind, filename):
    marker = tmp_path / "pwned"
    data = _malicious(kind, marker)
    with pytest.raises(CheckpointError):
        load_checkpoint_bytes(data, "moons_mlp", filename)
    assert not marker.exists(), "the checkpoint ran code while loading"


@pytest.mark.parametrize("kind", ["system-zip", "exec-legacy"])
def test_the_malicious_payload_is_live(tmp_path, kind):
    """Guard for the test above: an unsafe load of the same bytes does run the code."""
    marker = tmp_path / "proof"
    data = _malicious(kind, marker)
    if kind.endswith("zip"):
        torch.load(io.BytesIO(data), weights_only=False)
    else:
        pickle.loads(data)
    assert marker.exists()
