"""The results store: a sweep killed half-way resumes with no point computed twice and none lost; torn rows
and other runs' rows are never read back as this run's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pandas as pd
import pytest

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.experiments import sweep
from sparsity_viz.results_store import ResultsStore, point_key, store_path

ROOT = Path(__file__).resolve().parent.parent
# magnitude is seed-free (seed 1 copies seed 0's 3 points), random is not: 9 computed points, 12 rows
SWEEP = dict(strategies=["magnitude", "random"], levels=[0.0, 0.5, 0.9], seeds=[0, 1])
COMPUTED, ROWS = 9, 12

KILLED_SWEEP = textwrap.dedent("""
    import os, signal, sys
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.data import load_dataset
    from sparsity_viz.experiments import sweep

    store, counter, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def count(model):  # one line per computed point
        with open(counter, "a") as fh:
            fh.write("1\\n")
        return model

    def die(fraction, row):  # SIGKILL: no cleanup, no flush, like a crash or a pulled plug
        if fraction * {rows} >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    model, _ = load_sample("digits_mlp")
    sweep(model, load_dataset("digits"), {strategies!r}, {levels!r}, {seeds!r}, store=store, evaluator=count,
          progress=die)
""").format(rows=ROWS, **SWEEP)


@pytest.fixture(scope="module")
def digits():
    model, _ = load_sample("digits_mlp")
    return model, load_dataset("digits")


@pytest.fixture(scope="module")
def uninterrupted(digits):
    model, data = digits
    return sweep(model, data, **SWEEP)


def counting_sweep(digits, store, **kw):
    """The sweep with a store; returns the frame and how many points it computed."""
    calls = []
    frame = sweep(*digits, store=store, evaluator=lambda m: calls.append(1) or m, **{**SWEEP, **kw})
    return frame, len(calls)


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_a_killed_sweep_resumes_without_computing_a_point_twice(digits, uninterrupted, tmp_path):
    store, counter = tmp_path / "sweep.csv", tmp_path / "computed.txt"
    proc = subprocess.run([sys.executable, "-c", KILLED_SWEEP, str(store), str(counter), "5"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr  # killed, not finished
    run_id = uninterrupted.attrs["run_id"]
    before = ResultsStore(store, run_id).rows()
    first = len(counter.read_text().splitlines())
    assert 5 <= len(before) < ROWS and 0 < first < COMPUTED
    resumed, second = counting_sweep(digits, store)
    assert first + second == COMPUTED, "no point computed twice"
    assert resumed.attrs["resumed"] == len(before) and not resumed.attrs["cancelled"]
    same_rows(resumed, uninterrupted)  # none lost, the same numbers
    keys = pd.read_csv(store, comment="#")["point"]
    assert len(keys) == ROWS and keys.is_unique, "every point once in the store"


def test_a_torn_last_row_is_ignored_with_a_warning_and_recomputed(digits, uninterrupted, tmp_path):
    store = tmp_path / "sweep.csv"
    counting_sweep(digits, store)
    text = store.read_text()
    store.write_text(text[:-15])  # the last row cut mid-number: killed while writing it
    with pytest.warns(UserWarning, match="last line is incomplete"):
        frame, computed = counting_sweep(digits, store)
    assert computed == 1, "only the torn point"
    same_rows(frame, uninterrupted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the torn line was cut before the new row: the file is clean again
        rows = ResultsStore(store, uninterrupted.attrs["run_id"]).rows()
    assert len(rows) == ROWS
    now = store.read_text().splitlines()
    assert now[:-1] == text.splitlines()[:-1] and len(now) == len(text.splitlines()), "the torn row rewritten, once"


def test_other_runs_in_the_same_store_are_not_mixed_in(digits, tmp_path):
    store = tmp_path / "sweep.csv"
    a, computed_a = counting_sweep(digits, store, levels=[0.5])
    b, computed_b = counting_sweep(digits, store, levels=[0.9])
    assert a.attrs["run_id"] != b.attrs["run_id"] and computed_b == computed_a == 3
    assert set(b["sparsity"]) == {0.9} and b.attrs["resumed"] == 0
    everything = pd.read_csv(store, comment="#")
    assert set(everything["run_id"]) == {a.attrs["run_id"], b.attrs["run_id"]} and len(everything) == 8
    header = [ln for ln in store.read_text().splitlines() if ln.startswith("# run_id:")]
    assert header == [f"# run_id: {a.attrs['run_id']}", f"# run_id: {b.attrs['run_id']}"], "each configuration once"


def test_store_paths_keys_and_bad_input(tmp_path):
    assert store_path(tmp_path, "abc") == tmp_path / "abc.csv"
    assert store_path(tmp_path / "runs", "abc") == tmp_path / "runs" / "abc.csv", "a new directory"
    assert store_path(tmp_path / "one.csv", "abc") == tmp_path / "one.csv"
    assert point_key("snip", 2, 0.9) == "snip/2/0.9" and point_key("snip", 2, 0.1 + 0.2) == "snip/2/0.30000000000000004"
    with pytest.raises(ValueError, match="run id"):
        ResultsStore(tmp_path, "a/b")
    store = ResultsStore(tmp_path / "s.csv", "run1")
    store.append("k", {"accuracy": 0.5})
    assert store.rows() == {"k": {"accuracy": 0.5}}
    with pytest.raises(ValueError, match="has columns \\['accuracy'\\].*use another store file"):
        ResultsStore(tmp_path / "s.csv", "run2").append("k", {"loss": 1.0})
    assert os.path.getsize(tmp_path / "s.csv") > 0
    # an audit: a file where the store's folder would go failed only after the work; non-UTF-8 said "utf-8"
    (tmp_path / "run.sh").write_text("echo\n")
    with pytest.raises(ValueError, match=r"cannot be made: .*run\.sh is a file, not a folder"):
        ResultsStore(tmp_path / "run.sh" / "x.csv", "run1")
    (tmp_path / "latin.csv").write_bytes(b"run_id,point\n\xff\xfe\n")
    with pytest.raises(ValueError, match=r"latin\.csv is not a sparsity_viz results store: not UTF-8 text \(byte 13\)"):
        ResultsStore(tmp_path / "latin.csv", "run1").rows()


@pytest.mark.parametrize("text", ["a,b\n1,2\n", "hello world\n", "point,run_id\nx,y\n"])
def test_a_csv_that_is_not_a_store_is_named_not_read_as_one(tmp_path, text):
    """It printed the bare KeyError text ('run_id', or an Index of columns) before."""
    path = tmp_path / "other.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"other.csv is not a sparsity_viz results store: its columns start .*"
                                         r"a store's start run_id, point"):
        ResultsStore(path, "abc").rows()


@pytest.mark.parametrize("text", ['{"important": 1}', "a,b\n1,2", "#!/bin/sh"])
def test_a_file_without_a_final_newline_that_is_no_store_is_refused_not_cut(tmp_path, text):
    """Taken for a store torn by a kill, a one-line JSON file given as --store was cut to nothing and overwritten
    with rows, exit 0 (an audit). A store torn inside its first line is still read (and resumed) as one."""
    path = tmp_path / "settings.json"
    path.write_text(text)
    store = ResultsStore(path, "abc")
    with pytest.raises(ValueError, match=r"settings.json is not a sparsity_viz results store: it starts .*; a store "
                                         r"starts with '# run_id:' or 'run_id,point'"):
        store.append("p", {"accuracy": 0.5})
    assert path.read_text() == text
    for torn in ("# run_i", "run_id,po"):
        path.write_text(torn)
        with pytest.warns(UserWarning, match="the last line is incomplete"):
            ResultsStore(path, "abc").append("p", {"accuracy": 0.5})
        assert path.read_text().splitlines() == ["run_id,point,accuracy", "abc,p,0.5"]


def test_two_stores_joined_read_back_as_numbers(digits, uninterrupted, tmp_path):
    """`cat a.csv b.csv`: the second column row was read as a data row, so every value came back as text
    ("False" is true in a notebook) and the table output failed (an audit)."""
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    counting_sweep(digits, first, levels=[0.5])
    counting_sweep(digits, second, levels=[0.9])
    joined = tmp_path / "joined.csv"
    joined.write_text(first.read_text() + second.read_text())
    frame, computed = counting_sweep(digits, joined, levels=[0.5])
    assert computed == 0 and frame["accuracy"].dtype.kind == "f" and frame["collapsed"].dtype == bool
    same_rows(frame, uninterrupted[uninterrupted.sparsity == 0.5].reset_index(drop=True))


def test_only_rows_that_are_points_of_the_sweep_under_their_own_key_are_read_back(digits, uninterrupted, tmp_path):
    """A row edited into the store for a level the run never had was shown as a result; one whose key and
    sparsity column disagree was shown under the column's level and its own point counted as done (an audit)."""
    store = tmp_path / "sweep.csv"
    counting_sweep(digits, store)
    lines = store.read_text().splitlines()
    run = uninterrupted.attrs["run_id"]
    row = next(ln for ln in lines if ln.startswith(f"{run},{point_key('random', 0, 0.9)},"))
    foreign = row.replace(point_key("random", 0, 0.9), point_key("random", 0, 0.7)).replace(",0.9,", ",0.7,")
    lying = lines.index(next(ln for ln in lines if ln.startswith(f"{run},{point_key('random', 1, 0.5)},")))
    lines[lying] = lines[lying].replace(",0.5,", ",0.7,", 1)  # the key says 0.5, the sparsity column 0.7
    store.write_text("\n".join(lines + [foreign]) + "\n")
    frame, computed = counting_sweep(digits, store)
    assert computed == 1, "the point whose row lied is computed again"
    assert set(frame.sparsity) == {0.0, 0.5, 0.9}
    same_rows(frame.sort_values(["strategy", "seed", "sparsity"]).reset_index(drop=True),
              uninterrupted.sort_values(["strategy", "seed", "sparsity"]).reset_index(drop=True))


def test_a_store_cut_inside_its_configuration_gets_the_whole_configuration_again(digits, tmp_path):
    """Only the '# run_id:' line was looked for: a store cut inside the header kept 3 of its 10 lines for good."""
    from sparsity_viz.run_config import read_header, run_id

    store = tmp_path / "sweep.csv"
    counting_sweep(digits, store, levels=[0.5])
    lines = store.read_text().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    assert len(header) > 4
    store.write_text("\n".join(header[:3]) + "\n")  # cut inside the configuration, before any row
    frame, computed = counting_sweep(digits, store, levels=[0.5])
    assert computed == 3
    again = store.read_text().splitlines()
    block = again[again.index(header[0], 1):] if again.count(header[0]) > 1 else again
    config, stated = read_header(block)
    assert stated == frame.attrs["run_id"] == run_id(config)


def test_a_store_with_other_columns_is_refused_before_any_work(digits, uninterrupted, tmp_path):
    """Found by an audit: with accuracy and loss swapped in the header a resumed sweep returned 171 % accuracy,
    and a store with other columns failed only after computing a point."""
    store = tmp_path / "sweep.csv"
    counting_sweep(digits, store, levels=[0.5])
    text = store.read_text()
    swapped = text.replace(",accuracy,loss,", ",loss,accuracy,", 1)
    assert swapped != text
    store.write_text(swapped)
    calls = []
    with pytest.raises(ValueError, match=r"has columns .*'loss', 'accuracy'.*this sweep writes .*use another store"):
        sweep(*digits, store=store, evaluator=lambda m: calls.append(1) or m, **SWEEP)
    assert calls == []  # refused when read, before the dense model was even evaluated


def test_a_store_path_ending_in_a_slash_is_a_folder(tmp_path):
    """Found by an audit: pathlib dropped the slash of `--store runs.v2/`, and two runs shared a file runs.v2."""
    assert store_path(f"{tmp_path / 'runs.v2'}/", "abc") == tmp_path / "runs.v2" / "abc.csv"
    ResultsStore(f"{tmp_path / 'runs.v2'}/", "abc").append("k", {"accuracy": 0.5})
    assert (tmp_path / "runs.v2").is_dir() and (tmp_path / "runs.v2" / "abc.csv").is_file()


def test_a_store_that_cannot_be_written_is_refused_up_front(tmp_path, monkeypatch):
    """Found by an audit: a read-only folder failed on the first row, after its work. (os.access stands in for a
    read-only folder: as root every folder is writable.)"""
    from sparsity_viz import results_store

    monkeypatch.setattr(results_store.os, "access", lambda path, mode: Path(path) != tmp_path / "ro")
    (tmp_path / "ro").mkdir()
    for path in (tmp_path / "ro", tmp_path / "ro" / "new" / "s.csv"):
        with pytest.raises(ValueError, match=r"is not writable here; give another store path"):
            ResultsStore(path, "run1")
    ResultsStore(tmp_path / "ok.csv", "run1")
