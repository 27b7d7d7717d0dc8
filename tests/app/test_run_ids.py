"""Curves and Compare default to 3 seeds with mean ± std bands, and their CSV downloads carry the run's
configuration and run id (read back with ``experiments.read_sweep_csv``, re-run to the same numbers)."""

from __future__ import annotations

import io

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

import app_state
from sparsity_viz.experiments import read_sweep_csv, rerun
from sparsity_viz.session import architecture_fingerprint, fingerprint
from apptools import charts, check, open_app


@pytest.fixture
def downloads(monkeypatch):
    """``{file name: bytes}`` of every download button the app registers (AppTest keeps no media files)."""
    seen: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if filename is not None and isinstance(path_or_data, bytes):
            seen[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return seen


def _csv(downloads: dict[str, bytes], prefix: str) -> tuple[str, bytes]:
    (name,) = [n for n in downloads if n.startswith(prefix)]
    return name, downloads[name]


def test_curves_default_three_seeds_band_and_download_with_run_id(downloads):
    at = open_app("moons_mlp", "7_curves")
    assert at.number_input(key="curves_seeds").value == 3
    at.multiselect(key="curves_levels").set_value([0, 50, 90]).run()
    at.button(key="curves_compute").click().run()
    check(at)
    frame = at.dataframe[0].value
    assert sorted(frame["seed"].unique()) == [0, 1, 2]
    # magnitude and global magnitude do not depend on the seed: seeds 1 and 2 are copies (2 strategies x 3 levels x 2)
    assert int(frame["replicated"].sum()) == 12 and set(frame[frame["replicated"]]["strategy"]) == {
        "magnitude", "global_magnitude"}
    fig = charts(at)[0]
    assert any(t.get("fill") == "tonexty" for t in fig["data"])  # random differs per seed: a mean ± std band
    assert "mean ± std over 3 seeds" in fig["layout"]["title"]["text"]

    name, data = _csv(downloads, "curves_moons_mlp_")
    back = read_sweep_csv(io.BytesIO(data))
    rid, config = back.attrs["run_id"], back.attrs["config"]
    assert name == f"curves_moons_mlp_{rid}.csv" and data.startswith(f"# run_id: {rid}\n".encode())
    assert any(rid in c.value for c in at.caption)
    wb = at.session_state[app_state.KEY_BENCH]
    assert config["model"] == {"name": "moons_mlp", "fingerprint": fingerprint(wb.dense),
                               "architecture": architecture_fingerprint(wb.dense)}
    assert config["seeds"] == [0, 1, 2] and config["levels"] == [0, 0.5, 0.9] and config["finetune"] is None
    assert [s["name"] for s in config["strategies"]] == ["magnitude", "global_magnitude", "random"]
    assert back["accuracy"].tolist() == frame["accuracy"].tolist()
    again = rerun(config)  # the same id re-run gives the same numbers
    assert again.attrs["run_id"] == rid and again["accuracy"].tolist() == frame["accuracy"].tolist()


def test_compare_defaults_run_three_seeds_and_fine_tuning_changes_the_run_id(downloads):
    at = open_app("moons_mlp", "9_compare")
    assert at.number_input(key="compare_seeds").value == 3
    at.multiselect(key="compare_strategies").set_value(["magnitude", "snip"]).run()
    downloads.clear()
    at.multiselect(key="compare_levels").set_value([0, 70, 95]).run()  # 3 seeds run at once (not "expensive")
    check(at)
    fig = charts(at)[0]
    assert any(t.get("fill") == "tonexty" for t in fig["data"])
    table = at.dataframe[0].value
    assert set(table["seeds"]) == {3}
    name, data = _csv(downloads, "compare_moons_mlp_")
    back = read_sweep_csv(io.BytesIO(data))
    config = back.attrs["config"]
    assert config["seeds"] == [0, 1, 2] and [s["name"] for s in config["strategies"]] == ["magnitude", "snip", "random"]
    assert "passes" not in config and back["mean_pct"].tolist() == table["mean_pct"].tolist()
    one_shot_id = back.attrs["run_id"]

    at.number_input(key="compare_ft").set_value(1).run()  # fine-tuning waits for the button
    at.number_input(key="compare_seeds").set_value(1).run()
    downloads.clear()
    at.button(key="compare_compute").click().run()
    check(at)
    at.run()
    name, data = _csv(downloads, "compare_moons_mlp_")
    tuned = read_sweep_csv(io.BytesIO(data)).attrs
    assert tuned["config"]["passes"] == ["one_shot", "finetuned"] and tuned["config"]["finetune"]["epochs"] == 1
    assert tuned["run_id"] != one_shot_id and name.endswith(f"_{tuned['run_id']}.csv")
