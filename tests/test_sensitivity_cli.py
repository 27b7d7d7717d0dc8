"""``python -m sparsity_viz sensitivity``: the scan the library computes, the CSV, the guided targets, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sparsity_viz.cli import load_bundled, main
from sparsity_viz.experiments import read_sweep_csv
from sparsity_viz.pruning.sensitivity_guided import suggest_targets
from sparsity_viz.run_config import run_id
from sparsity_viz.sensitivity import sensitivity_scan

ARGS = ["sensitivity", "--model", "digits_mlp", "--levels", "0.5,0.9,0.99"]


@pytest.fixture(scope="module")
def expected():
    model, _, ds = load_bundled("digits_mlp")
    return sensitivity_scan(model, ds, (0.5, 0.9, 0.99), strategy="random", seeds=(0, 1))


def test_json_rows_equal_the_library_scan_and_the_csv_is_written(expected, capsys, tmp_path):
    path = tmp_path / "scan.csv"
    assert main([*ARGS, "--strategy", "random", "--seeds", "0,1", "--target", "0.8", "--csv", str(path),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    got = pd.DataFrame(out["rows"])
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False)
    assert out["dense_accuracy"] == expected.attrs["dense_accuracy"] and out["seeds"] == [0, 1]
    pd.testing.assert_frame_equal(pd.read_csv(path, comment="#"), expected.reset_index(drop=True), check_dtype=False)
    written = read_sweep_csv(path)  # the configuration header: the library scan's, with its run id
    assert written.attrs["config"] == expected.attrs["config"]
    assert written.attrs["run_id"] == run_id(expected.attrs["config"])
    assert written.attrs["config"]["kind"] == "sensitivity_scan" and written.attrs["config"]["seeds"] == [0, 1]
    targets = suggest_targets(expected, 0.8)
    assert [r["zeros"] for r in out["targets"]["layers"]] == targets["zeros"].tolist()
    assert sum(r["zeros"] for r in out["targets"]["layers"]) == round(0.8 * (2048 + 320))


def test_text_table_and_targets(capsys):
    assert main([*ARGS, "--target", "0.9"]) == 0
    out = capsys.readouterr().out
    model, _, ds = load_bundled("digits_mlp")
    scan = sensitivity_scan(model, ds, (0.5, 0.9, 0.99))
    fc1 = scan[scan["layer"] == "fc1"]["accuracy"].tolist()
    line = next(li for li in out.splitlines() if li.startswith("fc1 "))
    assert line.split()[1:] == ["2,048", *[f"{100 * a:.2f}" for a in fc1]]
    targets = suggest_targets(scan, 0.9)
    assert f"sensitivity-guided targets for 90.0% overall ({targets.attrs['target_zeros']:,} weights pruned" in out
    for r in targets.itertuples():
        assert f"({r.zeros:,} zeros)" in out
    assert main([*ARGS, "--target", "0.9", "--layers", "fc1"]) == 0  # "overall" named the scanned layers only
    assert "sensitivity-guided targets for 90.0% of the scanned layers (" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "needle"), [
    (["--levels", "0.5,1.5"], "sparsity must be in [0, 1], got 1.5"),
    (["--levels", "abc"], "sparsity must be a number"),
    (["--strategy", "gradual"], "cannot prune one layer on its own"),
    (["--strategy", "nope"], "Unknown strategy 'nope'"),
    (["--seeds", "a"], "a seed must be a whole number from 0 to 4294967295, got 'a'"),
    (["--target", "2"], "sparsity must be in [0, 1]"),
    (["--layers", "fc9"], "Unknown layer(s) 'fc9'"),
    (["--csv", "/nonexistent-dir/x.csv"], "does not exist"),
])
def test_bad_input_is_one_error_line_exit_2(argv, needle, capsys):
    assert main([*ARGS, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and len(err.splitlines()) == 1


def test_unknown_model_is_one_error_line(capsys):
    assert main(["sensitivity", "--model", "nope"]) == 2
    assert "Unknown model 'nope'" in capsys.readouterr().err
