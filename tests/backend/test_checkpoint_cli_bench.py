"""Sparse checkpoints (bit-exact, smaller), the bench / sparse-save CLI, and the bench DataFrames."""

import argparse
import json

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
    for bad in (["--batch", "1,x"], ["--model", "nope"], ["--sparsity", "1.5"], ["--batch", "0"]):
        args = _parser().parse_args(["bench", *bad])
        assert args.func(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and "Traceback" not in err


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
