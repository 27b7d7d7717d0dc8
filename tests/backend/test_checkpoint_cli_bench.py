"""Sparse checkpoints (bit-exact, smaller), the bench / sparse-save CLI, and the bench DataFrames."""

import argparse
import json
from pathlib import Path

import pytest
import torch

from sparsity_viz.backend import crossovers, load_sparse, save_sparse, speedup_curves
from sparsity_viz.backend.bench import benchmark_model
from sparsity_viz.backend.cli import add_bench_parser, add_sparse_save_parser
from sparsity_viz.models import build_model
from sparsity_viz.pruning import prune


def _bits(t):
    return t.view(torch.int32) if t.dtype == torch.float32 else t


@pytest.mark.parametrize("name", ["lenet300", "lenet5", "digits_mlp"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0])
def test_sparse_checkpoint_roundtrip_bit_exact(name, sparsity, tmp_path):
    pruned = prune(build_model(name, seed=0), "global_magnitude", sparsity)
    path = tmp_path / "m.safetensors"
    saved = save_sparse(pruned.model, path)
    loaded = load_sparse(path)
    for k, v in pruned.model.state_dict().items():
        assert torch.equal(_bits(v), _bits(loaded.state_dict[k])), k
    rebuilt = loaded.build_model()
    assert type(rebuilt) is type(pruned.model)
    if sparsity >= 0.9:  # tiny models pay the JSON layout header
        assert saved.nbytes < (0.2 if name != "digits_mlp" else 0.5) * saved.dense_nbytes
    assert saved.nbytes <= saved.dense_nbytes + 2048
    for k, keep in loaded.masks.items():  # stored positions cover every nonzero
        assert (loaded.state_dict[k][~keep] == 0).all()


def test_checkpoint_with_masks_argument():
    model = build_model("lenet300", seed=0)
    masks = prune(model, "magnitude", 0.9).masks
    loaded = load_sparse(save_sparse(model, masks=masks).data)
    for k, m in masks.items():
        assert torch.equal(loaded.state_dict[k] != 0, m & (model.state_dict()[k] != 0))


def test_not_a_sparse_checkpoint():
    from safetensors.torch import save

    with pytest.raises(ValueError, match="Not a sparsity_viz sparse checkpoint"):
        load_sparse(save({"a": torch.zeros(2)}))


def _parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    add_bench_parser(sub)
    add_sparse_save_parser(sub)
    return p


def test_cli_bench_json(capsys):
    args = _parser().parse_args(["bench", "--model", "digits_mlp", "--sparsity", "0.9", "--batch", "1,8",
                                 "--repeats", "2", "--json"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    formats = {r["format"] for r in data["rows"]}
    assert {"dense", "csr-torch", "csr-native", "auto"} <= formats
    row = next(r for r in data["rows"] if r["format"] == "csr-torch" and r["batch"] == 8)
    assert row["ratio_torch_csr"] == pytest.approx(1.0)


def test_cli_bench_table_and_bad_args(capsys):
    args = _parser().parse_args(["bench", "--model", "moons_mlp", "--batch", "4", "--repeats", "2"])
    assert args.func(args) == 0
    assert "ratio_dense" in capsys.readouterr().out
    for bad in (["--model", "nope"], ["--sparsity", "1.5"]):
        args = _parser().parse_args(["bench", *bad])
        assert args.func(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    from sparsity_viz.cli import main

    # parsed up front by the CLI's list rules: 1,1 ran the whole benchmark, then failed on a duplicate index
    for batch, needle in (("1,x", "whole number"), ("0", "from 1 to 65536"), ("1,1", "1 is listed twice"),
                          ("1,,2", "an empty item")):
        assert main(["bench", "--model", "moons_mlp", "--batch", batch]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and needle in err and "\n" not in err


def test_cli_sparse_save(tmp_path, capsys):
    out = tmp_path / "s.safetensors"
    args = _parser().parse_args(["sparse-save", "--model", "lenet300", "--out", str(out), "--json"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bytes"] == out.stat().st_size < 0.2 * data["dense_bytes"]


def test_bench_frames():
    model = prune(build_model("digits_mlp", seed=0), "global_magnitude", 0.9).model
    df = benchmark_model(model, (1, 16), repeats=2, formats=("dense", "csr-torch", "csr-native", "auto"))
    assert set(df.columns) >= {"batch", "format", "median_us", "ratio_dense", "ratio_torch_csr", "weight_bytes",
                               "ideal_flop_ratio", "ideal_bytes_ratio"}
    assert (df[df.format == "dense"].ratio_dense == 1.0).all()
    curves = speedup_curves((16, 32), (0.0, 0.9), (1, 8), formats=("dense", "csr-torch", "csr-native"), repeats=2)
    assert len(curves) == 2 * 2 * 3 and (curves[curves.format == "dense"].speedup_vs_dense == 1.0).all()
    cross = crossovers(curves)
    assert set(cross.format) == {"csr-torch", "csr-native"}


def test_both_dense_references_in_one_table_and_the_callers_model_left_alone():
    """Timing dense and dense-cuda together gave every batch two reference rows and pandas refused to reindex
    ("cannot handle a non-unique multi-index!"): speedup_curves(device="cuda") with its defaults would have. And
    benchmark_model switched the caller's model to eval mode (an audit). Without a GPU the CUDA rows are skipped."""
    from sparsity_viz.backend.bench import benchmark_layer

    layer = benchmark_layer(torch.randn(16, 16), None, [1, 4], formats=("dense", "dense-cuda", "csr-cuda"), repeats=2)
    assert len(layer) == 2 * 3 and (layer[layer.format == "dense"].ratio_dense == 1.0).all()
    model = prune(build_model("digits_mlp", seed=0), "global_magnitude", 0.9).model.train()
    df = benchmark_model(model, [1], device="cpu", formats=("dense", "csr-torch", "dense-cuda", "csr-cuda"), repeats=2)
    assert len(df) == 4 and df[df.format == "csr-torch"].ratio_dense.notna().all()
    assert model.training


def test_a_conv_model_is_measured_in_every_format_its_im2col_layers_run():
    """LeNet-5's conv layers run a forced CSR format on their im2col matrix (plan 'im2col-csr-torch'), which the
    benchmark read as unavailable: the Speed page showed NaN and 'skipped: forced im2col-csr-torch' (an audit)."""
    model = prune(build_model("lenet5", seed=0), "magnitude", 0.9).model
    df = benchmark_model(model, (2,), repeats=1, formats=("dense", "csr-torch", "csr-native"), time_cap_s=1)
    for fmt in ("csr-torch", "csr-native"):
        row = df[df.format == fmt].iloc[0]
        assert row.median_us > 0 and not str(row.note).startswith("skipped"), row.note


# --- load_sparse: one error type, one line, whatever the bytes ---------------------------------------


def _sparse_bytes() -> bytes:
    return save_sparse(prune(build_model("moons_mlp", seed=0), "global_magnitude", 0.5).model).data


def _with_header(header: dict | bytes, body: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def _hostile(kind: str) -> bytes:
    from safetensors.torch import save

    meta = {"format": "sparsity_viz-sparse/1"}
    if kind == "huge header length":
        return (2**62).to_bytes(8, "little") + b"{}"
    if kind == "header not json":
        return _with_header(b"\xff\xfe not json at all")
    if kind == "header a list":
        return _with_header([1, 2, 3])
    if kind == "tensor past the end":
        return _with_header({"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 16)
    if kind == "no layout":
        return save({"a": torch.zeros(2)}, metadata=meta)
    if kind == "layout not json":
        return save({"a": torch.zeros(2)}, metadata=meta | {"layout": "{not json"})
    if kind == "layout names a missing tensor":
        layout = {"w": {"shape": [2, 2], "dtype": "float32", "encoding": "csr"}}
        return save({"a": torch.zeros(2)}, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "unknown dtype":
        layout = {"a": {"shape": [2], "dtype": "load", "encoding": "dense"}}
        return save({"a": torch.zeros(2)}, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "unknown encoding":
        layout = {"a": {"shape": [2], "dtype": "float32", "encoding": "zip"}}
        return save({"a": torch.zeros(2)}, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "enormous shape":  # a tiny file that would decode to terabytes
        layout = {"w": {"shape": [1, 10**12], "dtype": "float32", "encoding": "csr"}}
        tensors = {"w::rowptr": torch.zeros(2, dtype=torch.int32), "w::col": torch.zeros(0, dtype=torch.int32),
                   "w::val": torch.zeros(0)}
        return save(tensors, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "shape beyond float64":  # np.prod in float64 was inf: an OverflowError, not a CheckpointError (an audit)
        layout = {"w": {"shape": [10**200, 10**200], "dtype": "float32", "encoding": "csr"}}
        tensors = {"w::rowptr": torch.zeros(2, dtype=torch.int32), "w::col": torch.zeros(0, dtype=torch.int32),
                   "w::val": torch.zeros(0)}
        return save(tensors, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "values wider than the layout":  # 356 bytes whose layout passes the size limit as bool, decoded as float64
        layout = {"w": {"shape": [1, 2**27], "dtype": "bool", "encoding": "csr"}}
        tensors = {"w::rowptr": torch.tensor([0, 1], dtype=torch.int32), "w::col": torch.tensor([0], dtype=torch.int32),
                   "w::val": torch.ones(1, dtype=torch.float64)}
        return save(tensors, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "mask past the limit":  # 2**29 float16 entries are 1 GiB, and their stored-positions mask another 512 MiB
        layout = {"w": {"shape": [1, 2**29 - 2**20], "dtype": "float16", "encoding": "csr"}}
        tensors = {"w::rowptr": torch.zeros(2, dtype=torch.int32), "w::col": torch.zeros(0, dtype=torch.int32),
                   "w::val": torch.zeros(0, dtype=torch.float16)}
        return save(tensors, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "column out of range":
        layout = {"w": {"shape": [2, 2], "dtype": "float32", "encoding": "csr"}}
        tensors = {"w::rowptr": torch.tensor([0, 1, 1], dtype=torch.int32), "w::col": torch.tensor([7], dtype=torch.int32),
                   "w::val": torch.ones(1)}
        return save(tensors, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "repeated column":  # row 0 lists column 1 twice: one of the two values would vanish
        layout = {"w": {"shape": [2, 3], "dtype": "float32", "encoding": "csr"}}
        tensors = {"w::rowptr": torch.tensor([0, 2, 2], dtype=torch.int32),
                   "w::col": torch.tensor([1, 1], dtype=torch.int32), "w::val": torch.tensor([1.0, 2.0])}
        return save(tensors, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "float indices":  # 2.9 would be read as column 2
        layout = {"w": {"shape": [2, 3], "dtype": "float32", "encoding": "csr"}}
        tensors = {"w::rowptr": torch.tensor([0.0, 1.0, 1.0]), "w::col": torch.tensor([2.9]), "w::val": torch.ones(1)}
        return save(tensors, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "sign bitmap over stored values":  # would overwrite the stored 1.0 and 2.0 with -0.0
        layout = {"w": {"shape": [2, 4], "dtype": "float32", "encoding": "bitmap"}}
        tensors = {"w::bits": torch.tensor([0b11], dtype=torch.uint8), "w::val": torch.tensor([1.0, 2.0]),
                   "w::negzero": torch.tensor([0xFF], dtype=torch.uint8)}
        return save(tensors, metadata=meta | {"layout": json.dumps(layout)})
    if kind == "bitmap too short":
        layout = {"w": {"shape": [8, 8], "dtype": "float32", "encoding": "bitmap"}}
        tensors = {"w::bits": torch.full((2,), 255, dtype=torch.uint8), "w::val": torch.ones(16)}
        return save(tensors, metadata=meta | {"layout": json.dumps(layout)})
    raise AssertionError(kind)


def _damaged(kind: str) -> bytes:
    from safetensors.torch import save

    good = _sparse_bytes()
    if kind == "random":
        return bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).tolist())
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "truncated header":
        return good[:40]
    if kind == "empty":
        return b""
    if kind == "dense safetensors":
        return save(build_model("moons_mlp", seed=0).state_dict())
    return _hostile(kind)


DAMAGE = ["random", "truncated", "truncated header", "empty", "dense safetensors", "huge header length",
          "header not json", "header a list", "tensor past the end", "no layout", "layout not json",
          "layout names a missing tensor", "unknown dtype", "unknown encoding", "enormous shape", "shape beyond float64",
          "values wider than the layout", "mask past the limit",
          "column out of range", "bitmap too short", "repeated column", "float indices",
          "sign bitmap over stored values"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_load_sparse_raises_checkpoint_error_on_bad_bytes(kind, tmp_path):
    from sparsity_viz.checkpoints import CheckpointError

    data = _damaged(kind)
    with pytest.raises(CheckpointError) as info:
        load_sparse(data)
    msg = str(info.value)
    assert msg and "\n" not in msg and len(msg) < 400, msg
    assert "SafetensorError" not in msg and "Traceback" not in msg
    path = tmp_path / "bad.safetensors"  # a path gives the same error, naming the file
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_sparse(path)


def test_load_sparse_of_a_dense_file_says_what_it_is():
    from safetensors.torch import save

    with pytest.raises(ValueError, match="Not a sparsity_viz sparse checkpoint.*load_checkpoint_bytes"):
        load_sparse(save(build_model("moons_mlp", seed=0).state_dict()))


def test_sparse_build_model_refuses_float32_overflow():
    from sparsity_viz.checkpoints import CheckpointError

    model = build_model("moons_mlp", seed=0).double()
    with torch.no_grad():
        model.fc2.weight[0, 0] = 1e200
    loaded = load_sparse(save_sparse(model).data)
    assert loaded.state_dict["fc2.weight"].dtype == torch.float64  # the file itself is read as stored
    with pytest.raises(CheckpointError, match=r"overflow float32.*fc2\.weight"):
        loaded.build_model()


# --- bench: data-driven strategies get a seeded batch ------------------------------------------------


def _data_driven() -> list[str]:
    from sparsity_viz.pruning import STRATEGIES

    return [name for name, cls in STRATEGIES.items() if cls.needs_data]


def test_there_are_data_driven_strategies():
    assert {"snip", "grasp", "taylor"} <= set(_data_driven())


@pytest.mark.parametrize("strategy", _data_driven())
def test_cli_bench_data_driven_strategy(strategy, capsys):
    args = _parser().parse_args(["bench", "--model", "moons_mlp", "--strategy", strategy, "--sparsity", "0.5",
                                 "--batch", "1", "--repeats", "1", "--json"])
    assert args.func(args) == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert data["strategy"] == strategy and {"dense", "csr-torch"} <= {r["format"] for r in data["rows"]}
    assert data["rows"][0]["ideal_flop_ratio"] == pytest.approx(0.5, abs=0.05)


def test_bench_model_pruning_is_seeded_and_uses_the_models_data():
    from sparsity_viz.backend.cli import prune_sample
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.data import data_batch, load_dataset

    a, b = prune_sample("moons_mlp", "snip", 0.5, seed=3), prune_sample("moons_mlp", "snip", 0.5, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    model, card = load_sample("moons_mlp")
    batch = data_batch(load_dataset("moons", seed=card["dataset"].get("seed", 0)), seed=3)
    expected = prune(model, "snip", 0.5, seed=3, batch=batch).model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), expected.parameters()))
    other = prune_sample("moons_mlp", "snip", 0.5, seed=4)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), other.parameters()))


def test_a_sign_bitmap_over_pruned_entries_is_what_a_save_writes_and_loads_back():
    """The valid case next to the hostile one: -0.0 at pruned entries round-trips (keep_zero_signs)."""
    w = torch.tensor([[1.0, -0.0, 2.0, 0.0], [-0.0, 3.0, 0.0, 0.0]])
    model = build_model("moons_mlp", seed=0)
    with torch.no_grad():
        model.fc1.weight.zero_()
        model.fc1.weight[:2, :2] = w[:, :2]
    saved = save_sparse(model)
    back = load_sparse(saved.data).state_dict["fc1.weight"]
    assert torch.equal(torch.signbit(back), torch.signbit(model.fc1.weight)) and torch.equal(back, model.fc1.weight)


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "symlink to /dev/zero", "directory", "too large", "missing"])
def test_checkpoint_files_are_checked_before_they_are_read(kind, tmp_path):
    """/dev/zero or a pipe would be read until memory runs out (or forever): refused from stat() alone."""
    import os

    from sparsity_viz.checkpoints import MAX_CHECKPOINT_BYTES, CheckpointError, load_sample
    from sparsity_viz.compression import load_compressed

    path = tmp_path / "moons_mlp.safetensors"
    if kind == "/dev/zero":
        path = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    elif kind == "too large":  # a sparse file: no bytes written
        with open(path, "wb") as f:
            f.truncate(MAX_CHECKPOINT_BYTES + 1)
    expected = {"too large": "larger than the 64 MiB limit", "missing": "cannot read it"}.get(kind, "not a regular file")
    with pytest.raises(CheckpointError, match=expected):
        load_sparse(path)
    with pytest.raises(CheckpointError, match=expected):
        load_compressed(path)
    if kind != "/dev/zero":
        (tmp_path / "moons_mlp.json").write_text(json.dumps(
            {"architecture": {"kind": "mlp", "kwargs": {"in_features": 2, "hidden": [16, 16], "num_classes": 2}}}))
        with pytest.raises(CheckpointError, match=expected):
            load_sample("moons_mlp", tmp_path)
