"""The command line: real subprocess runs, JSON output checked against the library, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.cli import main
from sparsity_viz.data import load_dataset
from sparsity_viz.pruning import prune
from sparsity_viz.training import evaluate_dataset

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sparsity_viz", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_prune_json_matches_library():
    proc = run_cli("prune", "--model", "lenet300", "--strategy", "global_magnitude", "--sparsity", "0.9", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    model, _ = load_sample("lenet300")
    data = load_dataset("mnist5k")
    pruned = prune(model, "global_magnitude", 0.9)
    assert out["dense_accuracy"] == evaluate_dataset(model, data).accuracy
    assert out["pruned_accuracy"] == evaluate_dataset(pruned.model, data).accuracy
    assert out["achieved_sparsity"] == pytest.approx(0.9, abs=1e-6)
    layers = {row["layer"]: row for row in out["layers"]}
    assert layers["fc1"]["zeros"] == int((~pruned.masks["fc1.weight"]).sum())
    assert layers["total"]["parameters"] == 266200


def test_prune_finetune_and_save(tmp_path):
    ckpt, masks = tmp_path / "p.safetensors", tmp_path / "m.safetensors"
    proc = run_cli("prune", "--model", "digits_mlp", "--strategy", "magnitude", "--sparsity", "0.8",
                   "--finetune-epochs", "2", "--save", str(ckpt), "--save-masks", str(masks), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["finetuned_accuracy"] > out["pruned_accuracy"]
    from sparsity_viz.checkpoints import load_checkpoint_bytes
    from sparsity_viz.masks import load_masks

    saved = load_checkpoint_bytes(ckpt.read_bytes(), "digits_mlp", ckpt.name)
    m = load_masks(masks)
    assert bool((saved.fc1.weight[~m["fc1.weight"]] == 0).all())
    assert evaluate_dataset(saved, load_dataset("digits")).accuracy == out["finetuned_accuracy"]


def test_prune_human_output():
    proc = run_cli("prune", "--model", "moons_mlp", "--strategy", "random", "--sparsity", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "accuracy: dense" in proc.stdout and "fc1" in proc.stdout and "total" in proc.stdout


def test_sweep_csv_defaults_to_three_seeds_and_carries_its_configuration(tmp_path):
    import pandas as pd

    from sparsity_viz import __version__
    from sparsity_viz.experiments import read_sweep_csv, rerun
    from sparsity_viz.run_config import run_id

    out = tmp_path / "sweep.csv"
    proc = run_cli("sweep", "--model", "digits_mlp", "--strategies", "magnitude,random",
                   "--levels", "0,0.5,0.9", "--csv", str(out))
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(out, comment="#")) == 18  # 2 strategies x 3 levels x 3 default seeds
    frame = read_sweep_csv(out)
    config = frame.attrs["config"]
    assert out.read_text().startswith(f"# run_id: {run_id(config)}\n")
    assert f"(run id {run_id(config)})" in proc.stdout
    assert config["seeds"] == [0, 1, 2] and config["levels"] == [0, 0.5, 0.9]
    assert config["model"]["name"] == "digits_mlp" and config["dataset"]["name"] == "digits"
    assert [s["name"] for s in config["strategies"]] == ["magnitude", "random"]
    assert config["versions"]["sparsity_viz"] == __version__ and config["finetune"] is None
    # magnitude does not depend on the seed: seeds 1 and 2 are copies of seed 0; random is drawn per seed
    assert frame.groupby("strategy")["replicated"].sum().to_dict() == {"magnitude": 6, "random": 0}
    again = rerun(config)  # the same id re-run gives the same numbers, bit for bit
    assert again.attrs["run_id"] == frame.attrs["run_id"]
    assert again["accuracy"].tolist() == frame["accuracy"].tolist()


def test_sweep_json():
    proc = run_cli("sweep", "--model", "moons_mlp", "--strategies", "structured", "--levels", "0,0.5", "--json",
                   "--seeds", "0")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["sparsity"] for r in rows] == [0.0, 0.5]


def test_sweep_scheduled_strategies_need_a_budget_and_show_it():
    base = ("sweep", "--model", "moons_mlp", "--strategies", "magnitude,gradual", "--levels", "0.5", "--json",
            "--seeds", "0")
    proc = run_cli(*base)
    assert proc.returncode == 0, proc.stderr
    assert [r["strategy"] for r in json.loads(proc.stdout)] == ["magnitude"]
    assert "skipped gradual:" in proc.stderr and "--schedule-epochs" in proc.stderr
    proc = run_cli(*base, "--schedule-epochs", "2", "--executor", "process", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    rows = {r["strategy"]: r for r in json.loads(proc.stdout)}
    assert rows["gradual"]["kind"] == "scheduled" and rows["gradual"]["train_epochs"] == 2
    assert rows["magnitude"]["kind"] == "one_shot" and rows["magnitude"]["train_epochs"] == 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (("prune", "--model", "resnet", "--strategy", "magnitude", "--sparsity", "0.5"), "Unknown model"),
        (("prune", "--model", "lenet300", "--strategy", "magic", "--sparsity", "0.5"), "Unknown strategy"),
        (("prune", "--model", "lenet300", "--strategy", "magnitude", "--sparsity", "1.5"), "[0, 1]"),
        (("prune", "--model", "lenet300", "--strategy", "magnitude", "--sparsity", "lots"), "sparsity"),
        (("sweep", "--model", "lenet300", "--strategies", "magnitude", "--levels", "0,2"), "[0, 1]"),
        (("sweep", "--model", "moons_mlp", "--strategies", "gradual,set", "--levels", "0.5"), "nothing to sweep"),
        (("figure", "heatmap", "--model", "moons_mlp", "--strategy", "set", "--out", "/tmp/never.html"),
         "set prunes while it trains (a scheduled strategy), so it has no one-shot masks for a figure"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5,,0.9"), "an empty item"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.9,"), "an empty item"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5,5e-1"),
         "0.5 is listed twice"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude,magnitude", "--levels", "0.5"),
         "magnitude is listed twice"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5", "--seeds", "1,01"),
         "1 is listed twice"),
        (("sensitivity", "--model", "moons_mlp", "--levels", "0.5,0.9,0.5"), "0.5 is listed twice"),
        (("experts", "--model", "moe_moons", "--prune-experts", "1,,2"), "an empty item"),
        (("sweep", "--model", "moons_mlp", "--strategies", "rigl", "--levels", "0.5", "--finetune-epochs", "0"),
         "add --schedule-epochs N"),
        (("figure", "boundary", "--model", "lenet300", "--out", "x.png"), "2-D toy"),
        (("figure", "heatmap", "--model", "lenet300", "--out", "x.gif"), "Output must end"),
        (("prune", "--model", "lenet300", "--strategy", "magnitude", "--sparsity", "0.5", "--device", "tpu"), "invalid choice"),
        (("frobnicate",), "invalid choice"),
        (("prune", "--model", "digits_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--finetune-epochs", "1",
          "--train-fraction", "0"), "train fraction must be in (0, 1]"),
        (("prune", "--model", "digits_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--finetune-epochs", "1",
          "--train-fraction", "half"), "train fraction must be a number"),
        (("prune", "--model", "digits_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--train-fraction", "0.5"),
         "add --finetune-epochs N"),
        # found by an audit: each of these used to give a traceback, an empty result or a silent surprise
        (("train-samples", "--only", ""), "expected at least one comma-separated value"),  # had retrained them all
        (("train-samples", "--dir", ""), "expected a folder, got ''"),  # had written into the bundled sample_models/
        (("train-samples", "--dir", str(Path(__file__).resolve())), "is a file, not a folder"),  # had trained first, then failed
        (("train-samples", "--dir", "/nonexist/deeper"), "the folder /nonexist does not exist"),
        (("sparse-save", "--model", "moons_mlp", "--out", ""), "expected an output file name"),
        (("sparse-save", "--model", "moons_mlp", "--out", "/tmp"), "is a directory; give a file name"),
        (("sparse-save", "--model", "moons_mlp", "--out", "x.txt"), "name the file .safetensors, not .txt"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", ""), "at least one"),
        (("sweep", "--model", "moons_mlp", "--strategies", " , ", "--levels", "0.5"), "at least one"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5", "--seeds", ""), "at least one"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5", "--store", ""), "expected a path"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5", "--csv", "/no/such/dir/x.csv"),
         "the folder /no/such/dir does not exist"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5", "--csv", "/tmp"),
         "/tmp is a directory"),
        (("prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--save-masks",
          "/no/such/dir/m.safetensors"), "the folder /no/such/dir does not exist"),
        (("prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--save", "model.v1.pt"),
         "name the file .safetensors, not .pt"),
        (("prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--save", ""),
         "expected an output file name"),
        (("prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--save", "x" * 300 + ".safetensors"),
         "name is longer than 255 bytes"),
        (("figure", "heatmap", "--model", "moons_mlp", "--out", "/no/such/dir/x.html"), "does not exist"),
        (("prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--threads", "100000"),
         "threads must be from 1 to"),
        (("prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--seed", "9" * 20),
         "a seed must be from 0 to 4294967295"),
        (("prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--finetune-epochs", "-1"),
         "epochs must be from 0 to 10000"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5", "--schedule-epochs", "-1"),
         "epochs must be from 0 to 10000"),
        (("bench", "--model", "moons_mlp", "--batch", "1000000000000"), "a --batch size must be from 1 to 65536"),
        (("bench", "--model", "moons_mlp", "--repeats", "1000000000000"), "repeats must be from 1 to 10000"),
        (("experts", "--epochs", "1", "--balance-weight", "inf"), "expected a finite number >= 0"),
        (("quantize", "--model", "moons_mlp", "--strategy", "nosuch"), "Unknown strategy 'nosuch'"),
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5", "--executor", "process",
          "--workers", "10000"), "workers must be from 1 to"),  # 10,000 forked processes for one point, before
        (("sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5", "--workers", "0"),
         "workers must be from 1 to"),
        (("figure", "curves", "--model", "moons_mlp", "--strategies", "gradual", "--levels", "0.5", "--out", "x.html"),
         "Nothing to draw"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(args, needle, capsys):
    """In process (``cli.main``, what ``python -m sparsity_viz`` runs); one real process below checks the same path."""
    try:
        status = main(list(args))
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err
    assert status != 0
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("skipped ")]  # a skip note may come first
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [
    ("prune", "--model", "moons_mlp", "--strategy", "x" * 100_000, "--sparsity", "0.5"),
    ("prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "x" * 100_000),
])
def test_an_error_echoing_a_huge_argument_is_cut_in_the_middle(args, capsys):
    from sparsity_viz.cli import MAX_ERROR_CHARS

    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and len(err) < MAX_ERROR_CHARS + 100
    assert "characters cut" in err and ("choose one of" in err or "sparsity must be" in err)


def test_a_bad_argument_in_a_real_process_is_one_line():
    proc = run_cli("prune", "--model", "resnet", "--strategy", "magnitude", "--sparsity", "0.5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error:")
    assert "Unknown model" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [
    ["prune", "--strategy", "magnitude", "--sparsity", "0.5"], ["quantize", "--bits", "4"], ["compress"],
    ["activations"], ["sensitivity"], ["sweep", "--strategies", "magnitude", "--levels", "0.5"], ["models"],
])
def test_a_card_field_of_the_wrong_type_is_one_line_in_every_command(tmp_path, command):
    """A card under SPARSITY_VIZ_SAMPLES whose dataset is a string raised AttributeError deep in each command."""
    import os
    import shutil

    for suffix in (".json", ".safetensors"):
        shutil.copy(ROOT / "sample_models" / f"moons_mlp{suffix}", tmp_path)
    card = json.loads((tmp_path / "moons_mlp.json").read_text()) | {"dataset": "moons"}
    (tmp_path / "moons_mlp.json").write_text(json.dumps(card))
    args = command if command == ["models"] else [command[0], "--model", "moons_mlp", *command[1:]]
    proc = subprocess.run([sys.executable, "-m", "sparsity_viz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=os.environ | {"SPARSITY_VIZ_SAMPLES": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("error: moons_mlp.json: not a usable model card: "
                                   "dataset must be a JSON object, got str.")


def test_cuda_request_on_cpu_machine_is_one_clear_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = run_cli("prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--device", "cuda")
    assert proc.returncode == 2
    assert "no CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr


def test_figure_html(tmp_path):
    out = tmp_path / "curves.html"
    proc = run_cli("figure", "curves", "--model", "moons_mlp", "--levels", "0,0.5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 10_000 and "plotly" in out.read_text()[:5000].lower()


def test_models_listing():
    proc = run_cli("models", "--json")
    assert proc.returncode == 0
    assert {c["name"] for c in json.loads(proc.stdout)} >= {"lenet300", "lenet5", "moons_mlp"}


def test_diverging_fine_tuning_is_one_error_line_and_a_nonzero_exit(capsys):
    from sparsity_viz.cli import main  # in process: the same entry point, without a 10 s interpreter start

    status = main(["prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5",
                   "--finetune-epochs", "1", "--finetune-lr", "1e4", "--threads", "1"])
    out, err = capsys.readouterr()
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Training diverged in epoch 1: loss exploded"), err
    assert out == ""


def test_prune_finetune_on_a_train_fraction_reports_train_and_test_accuracy(tmp_path, capsys):
    from sparsity_viz.checkpoints import load_checkpoint_bytes
    from sparsity_viz.cli import main
    from sparsity_viz.data import train_subset

    ckpt = tmp_path / "p.safetensors"
    status = main(["prune", "--model", "digits_mlp", "--strategy", "magnitude", "--sparsity", "0.5",
                   "--finetune-epochs", "2", "--train-fraction", "0.1", "--dropconnect", "0.3", "--threads", "1",
                   "--save", str(ckpt), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    digits = load_dataset("digits")
    saved = load_checkpoint_bytes(ckpt.read_bytes(), "digits_mlp", ckpt.name)
    used = train_subset(digits, 0.1, seed=0)  # fine-tuning's seed is 0
    assert out["train_fraction"] == 0.1 and out["train_samples"] == len(used.y_train) == 144
    assert out["train_accuracy"] == evaluate_dataset(saved, used, split="train").accuracy  # eval mode, the 144 used
    assert out["test_accuracy"] == out["finetuned_accuracy"] == evaluate_dataset(saved, digits).accuracy
    assert out["train_test_gap"] == pytest.approx(out["train_accuracy"] - out["test_accuracy"])
    assert out["dropconnect"] == 0.3


def test_sweep_store_resumes_a_run_and_computes_nothing_twice(tmp_path, capsys):
    from sparsity_viz.cli import main

    args = ["sweep", "--model", "digits_mlp", "--strategies", "random", "--levels", "0.5,0.9", "--seeds", "0,1",
            "--store", str(tmp_path / "runs"), "--json", "--threads", "1"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == first, "the same rows, read back"
    assert "4 points of run" in captured.err and "(4 read back, 0 computed)" in captured.err
    assert len(list((tmp_path / "runs").glob("*.csv"))) == 1, "one file per run id in a store directory"


def test_sweep_on_ray_bad_input_is_one_error_line(capsys, monkeypatch):
    import socket

    from sparsity_viz.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    base = ["sweep", "--model", "digits_mlp", "--strategies", "random", "--levels", "0.5"]
    cases = [
        (["--executor", "ray", "--address", closed], f"error: Cannot reach a Ray cluster at {closed}"),
        (["--address", closed], "error: --address is for --executor ray"),
    ]
    missing = (["--executor", "ray"], "error: The ray executor needs Ray, which is not installed: "
                                      "pip install 'sparsity_viz[ray]'")
    for extra, needle in [*cases, missing]:
        if extra is missing[0]:
            monkeypatch.setitem(sys.modules, "ray", None)  # as where ray is not installed
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(needle), err


def test_prune_save_says_where_it_wrote_and_adds_the_suffix_only_when_there_is_none(tmp_path, capsys):
    base = ["prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--json"]
    assert main([*base, "--save", str(tmp_path / "pruned"), "--save-masks", str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["achieved_sparsity"] > 0  # stdout stays pure JSON
    assert f"wrote the pruned model to {tmp_path / 'pruned.safetensors'}" in out.err
    assert f"wrote the masks to {tmp_path / 'm.safetensors'}" in out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "pruned.safetensors"]


def _one_error(capsys) -> str:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_outputs_that_would_destroy_each_other_or_a_device_are_refused_before_any_work(tmp_path, capsys):
    """From an audit of the CLI: --save-masks over --save left only the masks, --csv over --store replaced the
    stored rows (both exit 0), a device named as a checkpoint became /dev/full.safetensors, and a FIFO or /dev/full
    as a store hung or read until killed."""
    import os

    base = ["prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--threads", "1"]
    same = str(tmp_path / "m.safetensors")
    assert main([*base, "--save", same, "--save-masks", str(tmp_path / "." / "m.safetensors")]) == 2
    assert "--save and --save-masks name the same file" in _one_error(capsys) and not Path(same).exists()
    assert main([*base, "--save", "/dev/null"]) == 2
    assert "/dev/null is not a regular file" in _one_error(capsys) and Path("/dev/null").is_char_device()
    sweep = ["sweep", "--model", "moons_mlp", "--strategies", "magnitude", "--levels", "0.5", "--seeds", "0",
             "--threads", "1"]
    store = tmp_path / "store.csv"
    assert main([*sweep, "--store", str(store)]) == 0
    kept = store.read_text()
    capsys.readouterr()
    assert main([*sweep, "--store", str(store), "--csv", str(store)]) == 2
    assert "--store and --csv name the same file" in _one_error(capsys) and store.read_text() == kept
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    assert main([*sweep, "--store", str(fifo)]) == 2
    assert "is not a regular file" in _one_error(capsys)


def test_an_output_that_is_a_bundled_models_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """`sparse-save --out sample_models/moons_mlp.safetensors` replaced the bundled model, exit 0 (an audit)."""
    import shutil

    import sparsity_viz.checkpoints as checkpoints

    samples = tmp_path / "samples"
    shutil.copytree(checkpoints.SAMPLE_DIR, samples)
    monkeypatch.setattr(checkpoints, "SAMPLE_DIR", samples)
    target = samples / "moons_mlp.safetensors"
    kept = target.read_bytes()
    for command in (["sparse-save", "--model", "moons_mlp", "--out", str(target)],
                    ["prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--save",
                     str(samples / "." / target.name)],
                    ["quantize", "--model", "moons_mlp", "--save", str(target)]):
        assert main([*command, "--threads", "1"]) == 2
        assert "is a bundled model's file; write elsewhere" in _one_error(capsys)
    assert target.read_bytes() == kept
    assert main(["prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--threads", "1",
                 "--save", str(tmp_path / "moons_mlp.safetensors")]) == 0  # its name elsewhere is fine


def test_a_learning_rate_past_float32s_range_is_one_line_not_a_traceback(capsys):
    """lr 4e37 raised RuntimeError inside torch's Adam (overflow converting to float); it is refused up front."""
    status = main(["prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5",
                   "--finetune-epochs", "1", "--finetune-lr", "4e37", "--threads", "1"])
    assert status == 2
    assert "a learning rate is a positive number up to 1e+30, got 4e37" in _one_error(capsys)
    for lr in ("nan", "inf", "0", "-1e-3", "fast"):  # refused even without the epochs that would use it
        assert main(["quantize", "--model", "moons_mlp", f"--finetune-lr={lr}"]) == 2
        assert "--finetune-lr: a learning rate is a" in _one_error(capsys)
    for command in (["compress", "--model", "moons_mlp"], ["sweep", "--model", "moons_mlp", "--strategies",
                    "magnitude", "--levels", "0.5"], ["experts", "--model", "moe_moons"]):
        flag = "--lr" if command[0] == "experts" else "--finetune-lr"
        assert main([*command, flag, "nan"]) == 2
        assert f"{flag}: a learning rate is a positive number" in _one_error(capsys)


def test_a_figure_output_with_a_bad_suffix_is_refused_before_any_work(monkeypatch, capsys, tmp_path):
    import sparsity_viz.figure_cli as figure_cli

    def fail(*_):
        raise AssertionError("the figure was computed before the suffix was checked")

    monkeypatch.setattr(figure_cli, "make_figure", fail)
    monkeypatch.setattr("sparsity_viz.cli.load_bundled", fail)
    assert main(["figure", "curves", "--model", "moons_mlp", "--out", str(tmp_path / "curves.bmp")]) == 2
    assert "Output must end in .png, .svg, .pdf, .html, got 'curves.bmp'." in _one_error(capsys)
    assert not list(tmp_path.iterdir())


def test_prune_runs_a_scheduled_strategy_as_scheduled_or_asks_for_its_budget(capsys):
    """prune --strategy gradual gave plain magnitude masks under gradual's name (an audit): now it trains while
    it prunes, for the --finetune-epochs budget, as the library's run does, or is refused without one."""
    from sparsity_viz.cli import bundled_finetune_config
    from sparsity_viz.pruning import get_strategy

    assert main(["prune", "--model", "digits_mlp", "--strategy", "gradual", "--sparsity", "0.8"]) == 2
    assert "gradual prunes while it trains (a scheduled strategy)" in _one_error(capsys)
    assert main(["prune", "--model", "digits_mlp", "--strategy", "gradual", "--sparsity", "0.8",
                 "--finetune-epochs", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    model, card = load_sample("digits_mlp")
    data = load_dataset("digits")
    run = get_strategy("gradual").run(model, data, 0.8, bundled_finetune_config(card, 2, None, "auto"))
    assert out["kind"] == "scheduled" and out["pruned_accuracy"] is None
    assert out["finetuned_accuracy"] == evaluate_dataset(run.model, data).accuracy
    magnitude = prune(model, "magnitude", 0.8).masks
    assert any(not torch.equal(run.masks[k], magnitude[k]) for k in magnitude)  # not magnitude's one-shot masks
    assert out["finetune_epochs"] == out["train_epochs"] == 2


def test_prune_reports_the_epochs_iterative_pruning_trained(capsys):
    """Found by an audit: iterative pruning trains its --finetune-epochs once per round, 12 epochs for 1 asked at
    90 %, and the JSON said only "finetune_epochs": 1."""
    from sparsity_viz.pruning import get_strategy
    from sparsity_viz.training import TrainConfig

    assert main(["prune", "--model", "moons_mlp", "--strategy", "iterative", "--sparsity", "0.5",
                 "--finetune-epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rounds = get_strategy("iterative").rounds_for(0.5)
    assert rounds >= 2 and out["train_epochs"] == 1 + rounds == get_strategy("iterative").training_epochs(
        0.5, TrainConfig(epochs=1))
    assert main(["prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["train_epochs"] == 0


def test_minus_zero_reads_as_zero_and_a_repeated_expert_is_refused(capsys):
    """`--sparsity -0` printed "-0.0%", and `--prune-experts 0,0` counted expert 0 twice (an audit)."""
    assert main(["prune", "--model", "moons_mlp", "--strategy", "magnitude", "--sparsity", "-0", "--threads", "1"]) == 0
    assert "-0.0" not in capsys.readouterr().out
    assert main(["experts", "--model", "moe_moons", "--prune-experts", "0,0"]) == 2
    assert "--prune-experts: each integer once, got '0,0'" in _one_error(capsys)
