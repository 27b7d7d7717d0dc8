"""Checkpoints: bit-exact round trips, clear errors, and no code execution from uploads."""

from __future__ import annotations

import io
import json
import os
import pickle
import re

import pytest
import torch
from safetensors.torch import save as st_save

import sparsity_viz.checkpoints as ckpt
from sparsity_viz import CheckpointError, available_samples, build_model, load_checkpoint_bytes, load_sample, save_model
from sparsity_viz.checkpoints import base_card, check_outputs_finite, read_state_dict, state_dict_to_bytes
from sparsity_viz.masks import masks_from_zeros, sparsity


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


def test_moe_card_round_trip_is_listed_apart_from_the_chain_models(tmp_path):
    from sparsity_viz.models import build_architecture
    from sparsity_viz.moe import MOE_ARCHITECTURES, MoEMLP

    spec = MOE_ARCHITECTURES["moe_moons"]
    model = build_architecture("moe", spec.kwargs)  # the lazy "moe" builder, from JSON-able arguments
    assert isinstance(model, MoEMLP) and model.expert_hidden == (8,) and model.top_k == 1
    save_model(model, tmp_path / "moe_moons", card={"name": "moe_moons", "architecture": {"kind": "moe",
                                                                                            "kwargs": spec.kwargs}})
    assert ckpt.available_moe_samples(tmp_path) == ["moe_moons"] and available_samples(tmp_path) == []
    loaded, _ = load_sample("moe_moons", tmp_path)
    _assert_same_state(model, loaded)
    with pytest.raises(ValueError, match="known: mlp, lenet5, moe"):
        build_architecture("nope", {})


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


def test_a_header_key_given_twice_is_refused():
    """The safetensors header is JSON: of two equal keys the last won without a word (an audit)."""
    data = st_save(dict(build_model("moons_mlp", seed=0).state_dict()), metadata={"format": "pt"})
    header_len = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + header_len].replace(b'{"format":"pt"}', b'{"format":"pt","format":"np"}')
    data = len(header).to_bytes(8, "little") + header + data[8 + header_len :]
    with pytest.raises(CheckpointError, match=r"m\.safetensors: unreadable safetensors header \(the key 'format' "
                                              r"appears twice"):
        load_checkpoint_bytes(data, "moons_mlp", "m.safetensors")


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
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_bytes(data, "moons_mlp", filename)
    assert not marker.exists(), "the checkpoint ran code while loading"
    assert "weights_only` set to `False" not in str(info.value)  # torch's advice to load it unsafely is not passed on


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


# --- values that do not fit the model's dtype ------------------------------------------------------


def _overflowing_doubles(name: str = "moons_mlp") -> dict[str, torch.Tensor]:
    state = {k: v.double() for k, v in build_model(name, seed=0).state_dict().items()}
    state["fc1.weight"][0, 0] = 1e300  # finite in float64, inf in float32
    state["fc2.bias"][1] = -3.5e38  # just past float32's largest (3.4028e38)
    return state


@pytest.mark.parametrize("filename", ["big.safetensors", "big.pt"])
def test_float64_values_overflowing_float32_raise(filename):
    state = _overflowing_doubles()
    data = _pt_bytes(state) if filename.endswith(".pt") else st_save(state)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_bytes(data, "moons_mlp", filename)
    msg = str(info.value)
    assert filename in msg and "overflow" in msg and "float32" in msg
    assert "fc1.weight" in msg and "fc2.bias" in msg and "fc2.weight" not in msg


def test_float64_overflow_raises_through_load_sample(tmp_path):
    (tmp_path / "moons_mlp.safetensors").write_bytes(st_save(_overflowing_doubles()))
    model = build_model("moons_mlp", seed=0)
    (tmp_path / "moons_mlp.json").write_text(__import__("json").dumps(base_card("moons_mlp", model)))
    with pytest.raises(CheckpointError, match=r"overflow float32.*fc1\.weight"):
        load_sample("moons_mlp", tmp_path)


def test_float64_at_float32_limit_still_loads():
    state = {k: v.double() for k, v in build_model("moons_mlp", seed=0).state_dict().items()}
    state["fc1.weight"][0, 0] = float(torch.finfo(torch.float32).max)
    state["fc1.weight"][0, 1] = 1e-300  # underflows to 0: precision, not an error
    loaded = load_checkpoint_bytes(st_save(state), "moons_mlp")
    assert loaded.fc1.weight[0, 0] == torch.finfo(torch.float32).max and loaded.fc1.weight[0, 1] == 0


@pytest.mark.parametrize("dtype", [torch.complex64, torch.bool, torch.float8_e4m3fn])
def test_complex_or_bool_weights_are_refused(dtype):
    """A complex weight loaded with its imaginary part dropped (only a UserWarning), a bool one as 0 / 1; float8
    raised from isfinite, which torch lacks for it (an audit)."""
    state = {k: v.to(dtype) for k, v in build_model("moons_mlp", seed=0).state_dict().items()}
    state["fc1.weight"] = state["fc1.weight"].contiguous()
    with pytest.raises(CheckpointError, match=rf"complex, bool or other values where the model has real weights "
                                              rf"\(it takes float16, .*\): "
                                              rf"fc1\.weight \({str(dtype).removeprefix('torch.')}\)"):
        load_checkpoint_bytes(st_save(state), "moons_mlp")


def test_integer_weights_still_load():
    state = {k: v.round().to(torch.int32) for k, v in build_model("moons_mlp", seed=0).state_dict().items()}
    loaded = load_checkpoint_bytes(st_save(state), "moons_mlp")
    assert loaded.fc1.weight.dtype == torch.float32 and torch.equal(loaded.fc1.weight, state["fc1.weight"].float())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_in_a_pt_raise(bad):
    state = {k: v.double() for k, v in build_model("moons_mlp", seed=0).state_dict().items()}
    state["fc1.bias"][0] = bad
    with pytest.raises(CheckpointError, match=r"NaN or infinite.*fc1\.bias \(1\)"):
        load_checkpoint_bytes(_pt_bytes(state), "moons_mlp", "bad.pt")


# --- the app's own sparse checkpoint; stored zeros are pruned weights -------------------------------


def _pruned(name: str, sparsity: float = 0.9):
    from sparsity_viz.pruning import prune

    return prune(build_model(name, seed=0), "global_magnitude", sparsity).model


@pytest.mark.parametrize("name", ["lenet300", "lenet5", "moons_mlp"])
def test_sparse_checkpoint_upload_gives_the_dense_model(name):
    from sparsity_viz.backend import save_sparse

    pruned = _pruned(name)
    data = save_sparse(pruned, metadata={"strategy": "global_magnitude"}).data
    loaded = load_checkpoint_bytes(data, name, f"{name}_sparse.safetensors")
    _assert_same_state(pruned, loaded)
    assert not loaded.training
    assert masks_from_zeros(loaded).keys() == masks_from_zeros(pruned).keys()
    assert sparsity(masks_from_zeros(loaded)) == pytest.approx(sparsity(masks_from_zeros(pruned)))


def test_sparse_checkpoint_of_another_architecture_names_model_keys_only():
    from sparsity_viz.backend import save_sparse

    data = save_sparse(_pruned("digits_mlp")).data
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_bytes(data, "lenet300", "digits_sparse.safetensors")
    msg = str(info.value)
    assert "fc1.weight" in msg and "(32, 64)" in msg and "::" not in msg  # no internal CSR / bitmap keys


def test_damaged_sparse_checkpoint_raises_checkpoint_error():
    from sparsity_viz.backend import save_sparse

    data = bytearray(save_sparse(_pruned("moons_mlp")).data)
    header_len = int.from_bytes(data[:8], "little")
    header = bytes(data[8 : 8 + header_len]).replace(b"csr", b"zip").replace(b"bitmap", b"zip___")
    data[8 : 8 + header_len] = header
    with pytest.raises(CheckpointError, match="m.safetensors"):
        load_checkpoint_bytes(bytes(data), "moons_mlp", "m.safetensors")


def test_stored_zeros_count_as_pruned_in_the_upload_workbench():
    from sparsity_viz.session import workbench_from_upload

    pruned = _pruned("lenet300")
    model = load_checkpoint_bytes(state_dict_to_bytes(pruned), "lenet300", "plain.safetensors")
    wb = workbench_from_upload("lenet300", "mnist5k", model, "plain.safetensors")
    assert wb.sparsity == pytest.approx(0.9, abs=1e-3)
    assert not wb.is_dense
    assert "plain.safetensors" in wb.origin and wb.card["uploaded"] == "plain.safetensors"
    for n, m in wb.masks.items():
        p = dict(wb.current.named_parameters())[n]
        assert torch.equal(m, p.detach() != 0)
    assert wb.current is not model and wb.dense is wb.current  # a private copy, as new_workbench makes
    from sparsity_viz.session import replace_current, reset

    back = reset(replace_current(wb, build_model("lenet300", seed=1), None, "something else"))
    assert back.current is wb.dense and back.sparsity == wb.sparsity  # reset keeps the stored zeros pruned
    dense_wb = workbench_from_upload("lenet300", "mnist5k", build_model("lenet300", seed=0), "dense.pt")
    assert dense_wb.sparsity == 0.0 and dense_wb.is_dense


def test_torch_prune_export_uploads_as_the_pruned_model():
    from sparsity_viz.exports import torch_prune_bytes
    from sparsity_viz.pruning import prune

    pruned = prune(build_model("digits_mlp", seed=0), "magnitude", 0.8)
    loaded = load_checkpoint_bytes(torch_prune_bytes(pruned.model, pruned.masks), "digits_mlp", "d_torch_prune.pt")
    _assert_same_state(pruned.model, loaded)
    for n, m in masks_from_zeros(loaded).items():
        assert torch.equal(m, pruned.masks[n] & (pruned.model.state_dict()[n] != 0)), n


def test_a_torch_pruned_model_saved_as_safetensors_uploads_pruned():
    """Found by an audit: only a ``.pt`` had its ``weight_orig`` / ``weight_mask`` pairs folded; the same state
    dict saved with safetensors was refused as the wrong architecture."""
    from torch.nn.utils import prune as torch_prune

    model = build_model("digits_mlp", seed=0)
    torch_prune.l1_unstructured(model.fc1, "weight", amount=0.7)
    data = st_save({k: v.contiguous() for k, v in model.state_dict().items()})
    loaded = load_checkpoint_bytes(data, "digits_mlp", "pruned.safetensors")
    assert torch.equal(loaded.fc1.weight, model.fc1.weight)  # weight_orig * weight_mask
    assert int((loaded.fc1.weight == 0).sum()) == round(0.7 * model.fc1.weight.numel())


def test_outputs_that_overflow_are_refused_and_finite_ones_pass():
    """Finite weights can still overflow in use: 1e30 * 1e30 is inf in float32."""
    model = build_model("moons_mlp", seed=0).eval()
    x = torch.randn(600, 2)
    check_outputs_finite(model, x)  # a normal model: nothing to say
    with torch.no_grad():
        model.fc1.weight.fill_(1e30)
        model.fc2.weight.fill_(1e30)
    with pytest.raises(CheckpointError, match=r"mine.safetensors: the model's outputs overflow \(inf or NaN\) on "
                                              r"\d+ of 512 test samples; its largest weight is 1e\+30"):
        check_outputs_finite(model, x, "mine.safetensors")
    assert not model.training


def test_a_torch_prune_mask_must_be_zeros_and_ones():
    """A '_mask' of 7.0 would have been folded in as weight * 7."""
    from sparsity_viz.checkpoints import fold_torch_prune

    state = {"fc1.weight_orig": torch.ones(2, 2), "fc1.weight_mask": torch.tensor([[1.0, 0.0], [7.0, 1.0]])}
    with pytest.raises(CheckpointError, match="fc1.weight_mask holds values other than 0 and 1"):
        fold_torch_prune(state)
    state["fc1.weight_mask"] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(fold_torch_prune(state)["fc1.weight"], torch.eye(2))


@pytest.mark.parametrize("card,match", [
    ("[]", "a model card is a JSON object, got list"),
    ("{not json", "not a readable model card"),
    ("[" * 100_000 + "]" * 100_000, r"not a readable model card \(JSON nested too deeply to read\)"),  # RecursionError
    ('{"architecture": {"kind": "mlp", "kwargs": {"in_features": 2, "hidden": [-5], "num_classes": 2}}}',
     "cannot build its architecture"),
])
def test_a_malformed_model_card_is_one_clear_error(tmp_path, card, match):
    (tmp_path / "moons_mlp.json").write_text(card)
    (tmp_path / "moons_mlp.safetensors").write_bytes(state_dict_to_bytes(build_model("moons_mlp", seed=0)))
    with pytest.raises(CheckpointError, match=match):
        load_sample("moons_mlp", tmp_path)


def test_a_card_that_is_not_a_regular_small_file_is_refused_without_reading_it(tmp_path):
    """A card linked to /dev/zero was read until the process was killed for memory (an audit)."""
    (tmp_path / "moons_mlp.safetensors").write_bytes(state_dict_to_bytes(build_model("moons_mlp", seed=0)))
    (tmp_path / "moons_mlp.json").symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="moons_mlp.json: not a model card"):
        load_sample("moons_mlp", tmp_path)
    (tmp_path / "moons_mlp.json").unlink()
    (tmp_path / "moons_mlp.json").write_text("{" + " " * (2 * 1024 * 1024) + "}")
    with pytest.raises(CheckpointError, match="at most 1 MiB"):
        load_sample("moons_mlp", tmp_path)


def test_train_samples_never_reads_an_empty_list_as_all(tmp_path):
    from sparsity_viz.samples import train_samples

    with pytest.raises(ValueError, match="No sample model named"):
        train_samples([], tmp_path)
    assert not list(tmp_path.iterdir())


def test_every_bundled_card_has_fields_of_the_right_types():
    from sparsity_viz.checkpoints import SAMPLE_DIR, available_moe_samples, load_card
    from sparsity_viz.model_card import card_problems

    names = available_samples() + available_moe_samples()
    assert len(names) >= 8
    for name in names:
        assert card_problems(load_card(name)) == [], name
        assert card_problems(json.loads((SAMPLE_DIR / f"{name}.json").read_text())) == []


@pytest.mark.parametrize("field,value,named", [
    ("dataset", "mnist", "dataset must be a JSON object, got str"),
    ("recipe", [1], "recipe must be a JSON object, got list"),
    ("recipe", {"lr": "fast"}, "recipe.lr must be a finite number > 0, got 'fast'"),
    ("recipe", {"lr": float("nan")}, "recipe.lr must be a finite number > 0"),
    ("recipe", {"batch_size": 6.5}, "recipe.batch_size must be a whole number >= 1"),
    ("recipe", {"batch_size": True}, "recipe.batch_size must be a whole number >= 1"),
    ("recipe", {"dropout": 1.0}, "recipe.dropout must be a number in [0, 1)"),  # TrainConfig's range (an audit)
    ("recipe", {"train_fraction": 0.0}, "recipe.train_fraction must be a number in (0, 1]"),
    ("dataset", {"name": "moons", "seed": "0"}, "dataset.seed must be an integer, got '0'"),
    ("test_accuracy", "99 %", "test_accuracy must be a number in [0, 1]"),
    ("test_accuracy", 1.5, "test_accuracy must be a number in [0, 1]"),
    ("parameters", -1, "parameters must be a whole number >= 0"),
    ("description", ["x" * 1000], "description must be a string, got ['xxx"),
    ("load", [0.5, None], "load must be a list of finite numbers"),
    ("architecture", {"kind": 3, "kwargs": {}}, "architecture must be a JSON object with a string kind"),
])
def test_a_card_field_of_the_wrong_type_is_named(tmp_path, field, value, named):
    """A wrong type used to surface as a traceback in whichever command read the field (a CLI audit)."""
    model = build_model("moons_mlp", seed=0)
    card = json.loads((ckpt.SAMPLE_DIR / "moons_mlp.json").read_text()) | {field: value}
    (tmp_path / "moons_mlp.json").write_text(json.dumps(card))  # NaN is written as the non-standard NaN
    (tmp_path / "moons_mlp.safetensors").write_bytes(state_dict_to_bytes(model))
    with pytest.raises(CheckpointError, match=re.escape(f"moons_mlp.json: not a usable model card: {named}")):
        load_sample("moons_mlp", tmp_path)


def test_a_card_with_many_wrong_fields_names_three_and_counts_the_rest(tmp_path):
    card = json.loads((ckpt.SAMPLE_DIR / "moons_mlp.json").read_text())
    card |= {"name": 1, "description": 2, "torch_version": 3, "seed": "x", "parameters": "y"}
    (tmp_path / "moons_mlp.json").write_text(json.dumps(card))
    (tmp_path / "moons_mlp.safetensors").write_bytes(state_dict_to_bytes(build_model("moons_mlp", seed=0)))
    with pytest.raises(CheckpointError, match=r"card: name must be a string, got 1; [^;]*; [^;]* \(and 2 more\)\.$"):
        load_sample("moons_mlp", tmp_path)


def test_a_deflated_pt_zip_is_refused_by_its_unpacked_size_before_torch_loads_it(monkeypatch):
    """torch.save stores members uncompressed; a deflated 262 KB .pt unpacked to 256 MiB in memory (an audit)."""
    import zipfile

    monkeypatch.setattr(ckpt, "MAX_CHECKPOINT_BYTES", 2**20)
    plain = _pt_bytes({"fc1.weight": torch.zeros(2**20)})  # 4 MiB of zeros
    packed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain)) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert len(packed.getvalue()) < 2**20 / 10
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran on the bomb"))
    with pytest.raises(CheckpointError, match=r"bomb.pt: unpacks to 4\.0 MiB, larger than the 1 MiB limit"):
        read_state_dict(packed.getvalue(), "bomb.pt")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="bomb.pt: a corrupt zip archive|bomb.pt: not a weights-only"):
        small = _pt_bytes({"fc1.weight": torch.zeros(4)})
        read_state_dict(small[:-30] + b"\xff" * 30, "bomb.pt")  # its central directory broken


def test_expanded_views_in_a_pt_are_refused_before_anything_is_materialised(monkeypatch):
    """A 1.9 KB .pt of two ``expand``-ed views stood for 40000x40000 weights; folding them as a torch-prune pair
    took 6.4 GB before the shape check refused them (an audit). The limit counts the values a tensor stands for."""
    n = 40_000
    data = _pt_bytes({"fc1.weight_orig": torch.ones(1).expand(n, n), "fc1.weight_mask": torch.ones(1).expand(n, n)})
    assert len(data) < 4096
    monkeypatch.setattr(ckpt, "fold_torch_prune", lambda state: pytest.fail("the views were folded"))
    with pytest.raises(CheckpointError, match=r"bomb.pt: its tensors stand for 12,207 MiB of values, more than the 64"):
        read_state_dict(data, "bomb.pt")
    monkeypatch.undo()
    real = {"fc1.weight_orig": torch.randn(3, 2), "fc1.weight_mask": torch.ones(3, 2)}  # well within: folded
    assert torch.equal(read_state_dict(_pt_bytes(real), "ok.pt")["fc1.weight"], real["fc1.weight_orig"])


@pytest.mark.parametrize("odd,named", [(torch.eye(3).to_sparse(), "torch.sparse_coo, cpu"),
                                       (torch.empty(3, 3, device="meta"), "torch.strided, meta")])
def test_sparse_or_meta_tensors_in_a_pt_are_named_not_a_torch_error(odd, named):
    """They reached the app's catch-all as "Could not run 'aten::ne.Scalar' ... SparseCPU" (an audit)."""
    with pytest.raises(CheckpointError, match=re.escape(f"odd.pt: a state dict holds plain dense CPU tensors, not "
                                                        f"fc1.weight ({named}).")):
        read_state_dict(_pt_bytes({"fc1.weight": odd}), "odd.pt")


@pytest.mark.parametrize("kwargs,named", [
    ({"in_features": 4, "hidden": [-1], "num_classes": 2}, "negative dimension"),
    ({"in_features": 5 * 10**8, "hidden": [1], "num_classes": 2}, "500,000,005 parameters is more than the limit"),
    ({"in_features": 10**13, "hidden": [1], "num_classes": 2}, "parameters is more than the limit of 50,000,000"),
])
def test_architecture_metadata_is_sized_before_anything_is_allocated(kwargs, named):
    """Sparse and compressed checkpoints built their model from the file's sizes as given: a 236-byte file asking
    for 5e8 inputs allocated 2 GB before it was refused; a negative width raised RuntimeError (an audit)."""
    import resource

    from safetensors.torch import save as st_save

    from sparsity_viz.backend import load_sparse
    from sparsity_viz.compression import load_compressed

    layout = json.dumps({"x": {"shape": [1], "dtype": "float32", "encoding": "dense"}})
    arch = {"architecture": json.dumps("mlp"), "kwargs": json.dumps(kwargs)}
    sparse = st_save({"x": torch.zeros(1)}, metadata={"format": "sparsity_viz-sparse/1", "layout": layout, **arch})
    compressed = st_save({"x": torch.zeros(1)}, metadata={"format": "sparsity_viz-compressed/1", "layout": "{}", **arch})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=named):
        load_sparse(sparse).build_model()
    with pytest.raises(CheckpointError, match=named):
        load_compressed(compressed)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing near 2 GB


def test_checkpoint_metadata_nested_too_deeply_is_one_clear_error():
    """Found by an audit: JSON nested 100,000 deep in a checkpoint's metadata raised RecursionError from every
    loader (their except clauses took ValueError only)."""
    from sparsity_viz.backend import load_sparse
    from sparsity_viz.compression import load_compressed
    from sparsity_viz.run_config import read_header

    deep = "[" * 100_000 + "]" * 100_000
    layout = json.dumps({"x": {"shape": [1], "dtype": "float32", "encoding": "dense"}})
    arch = {"architecture": json.dumps("mlp"), "kwargs": json.dumps({"in_features": 2, "hidden": [2], "num_classes": 2})}
    files = [
        (st_save({"x": torch.zeros(1)}, metadata={"format": "sparsity_viz-sparse/1", "layout": deep, **arch}),
         lambda b: load_sparse(b)),
        (st_save({"x": torch.zeros(1)}, metadata={"format": "sparsity_viz-sparse/1", "layout": layout,
                                                  **arch, "kwargs": deep}), lambda b: load_sparse(b).build_model()),
        (st_save({"x": torch.zeros(1)}, metadata={"format": "sparsity_viz-compressed/1", "layout": deep, **arch}),
         load_compressed),
    ]
    for data, load in files:
        with pytest.raises(CheckpointError, match="nested too deeply|not JSON"):
            load(data)
    with pytest.raises(ValueError, match="Header line for 'model' is not valid JSON: JSON nested too deeply"):
        read_header(["# run_id: abc", f"# model: {deep}"])


def test_a_tiny_sparse_checkpoint_is_bounded_when_decoded_as_a_pt_is_unpacked():
    """Found by an audit: 14 KB declaring a 14000x14000 CSR weight was decoded (1 GiB) before its shape met the
    model's; a .pt gets a 64 MiB bound on what it unpacks to, and now so does a sparse checkpoint."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = cols = 14_000
    layout = {"fc1.weight": {"shape": [rows, cols], "dtype": "float32", "encoding": "csr"}}
    data = st_save({"fc1.weight::rowptr": torch.zeros(rows + 1, dtype=torch.int8),
                    "fc1.weight::col": torch.zeros(0, dtype=torch.int8), "fc1.weight::val": torch.zeros(0)},
                   metadata={"format": "sparsity_viz-sparse/1", "layout": json.dumps(layout)})
    assert len(data) < 20_000
    with pytest.raises(CheckpointError, match=r"decodes to more than 64 MiB \(shape \[14000, 14000\]\)"):
        load_checkpoint_bytes(data, "moons_mlp", "bomb.safetensors")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: no 1 GiB decode
