"""Session isolation, URL state, live training (stop, divergence), uploads and PNG export."""

from __future__ import annotations

import copy
import io
import os
import pickle
import shutil

import pytest
import torch

import app_state
from sparsity_viz.checkpoints import state_dict_to_bytes
from sparsity_viz.masks import masks_from_zeros, sparsity
from apptools import check, open_app


def test_two_sessions_are_isolated_and_the_cached_model_stays_dense():
    a = open_app("lenet300", "2_prune")
    b = open_app("lenet300", "4_weights")
    a.slider(key="prune_sparsity").set_value(95).run()
    check(a)
    wa, wb = a.session_state[app_state.KEY_BENCH], b.session_state[app_state.KEY_BENCH]
    assert wa.sparsity == pytest.approx(0.95, abs=0.005)
    assert wb.sparsity == 0.0
    assert sparsity(masks_from_zeros(wb.current)) < 0.01
    b.run()
    check(b)
    assert b.dataframe[0].value["sparsity"].iloc[-1] < 1  # session B's zeros table: still dense
    shared = app_state.shared_model("lenet300")
    assert sparsity(masks_from_zeros(shared)) < 0.01
    assert wa.dense is not shared and wb.dense is not shared and wa.dense is not wb.dense


def test_url_state_is_read_and_written():
    at = open_app(None, "2_prune", query={"model": "digits_mlp", "strategy": "random", "sparsity": "70", "lam": "0.01"})
    assert at.selectbox(key="sv_model").value == "digits_mlp"
    assert at.selectbox(key="prune_strategy").value == "random"
    assert at.slider(key="prune_sparsity").value == 70
    assert at.session_state[app_state.KEY_BENCH].sparsity == pytest.approx(0.7, abs=0.01)
    at.slider(key="prune_sparsity").set_value(40).run()
    assert at.query_params["sparsity"] in ("40", ["40"])
    at.switch_page("views/3_regularize.py").run()
    assert at.select_slider(key="reg_lambda").value == pytest.approx(0.01)


def test_finetune_runs_live_and_keeps_masks():
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(95).run()
    acc_pruned = at.metric[0].value
    at.number_input(key="prune_ft_epochs").set_value(1).run()
    at.button(key="prune_finetune").click().run()
    check(at)
    wb = at.session_state[app_state.KEY_BENCH]
    assert "fine-tuned 1 epochs" in wb.origin
    assert wb.sparsity == pytest.approx(0.95, abs=0.005)  # pruned weights stayed zero
    assert at.success and "Finished 1 epochs" in at.success[0].value
    assert at.metric[0].value != acc_pruned
    at.run()  # rerun without moving the slider: the fine-tuned model stays current
    assert "fine-tuned" in at.session_state[app_state.KEY_BENCH].origin


def test_stop_flag_cancels_training():
    at = open_app("lenet300", "3_regularize")
    at.session_state[app_state.KEY_STOP] = True  # what the Stop button does to a running training
    at.button(key="reg_train").click().run()
    check(at)
    assert at.warning and "Stopped" in at.warning[0].value
    assert at.session_state[app_state.KEY_BENCH].origin.startswith("dense")
    assert at.session_state[app_state.KEY_STOP] is False
    at.button(key="reg_train").click().run()  # the flag was consumed: the next run trains
    assert at.success


def test_diverging_run_shows_an_error_not_a_traceback():
    at = open_app("lenet300", "3_regularize")
    at.select_slider(key="reg_lambda").set_value(0.0).run()  # L1 at this lr would zero every weight first
    at.number_input(key="reg_lr").set_value(1e3).run()
    at.number_input(key="reg_epochs").set_value(2).run()
    at.button(key="reg_train").click().run()
    check(at)
    assert at.error and "diverged" in at.error[0].value
    assert at.session_state[app_state.KEY_BENCH].origin.startswith("dense")
    from sparsity_viz.divergence import REASONS

    assert "in epoch " in at.error[0].value and any(r in at.error[0].value for r in REASONS)  # epoch and reason


def _upload(at, name, data):
    at.file_uploader(key="home_upload").set_value((name, data, "application/octet-stream")).run()
    check(at)


def test_a_checkpoint_left_in_the_box_is_not_loaded_into_the_next_model():
    """Found by an audit: the box keeps its file, and each model picked next loaded it again (a moons checkpoint
    gave circles_mlp 39 %); emptying the box and putting the same file back was then ignored."""
    from safetensors.torch import save

    at = open_app("moons_mlp", "1_home")
    model = app_state.shared_model("moons_mlp")
    data = save({k: v * 0.5 for k, v in model.state_dict().items()})
    _upload(at, "mine.safetensors", data)
    assert "uploaded" in at.session_state[app_state.KEY_BENCH].origin
    at.selectbox(key=app_state.keys.MODEL).set_value("circles_mlp").run()
    check(at)
    wb = at.session_state[app_state.KEY_BENCH]
    assert wb.name == "circles_mlp" and "uploaded" not in wb.origin
    at.selectbox(key=app_state.keys.MODEL).set_value("moons_mlp").run()
    assert "uploaded" not in at.session_state[app_state.KEY_BENCH].origin  # still the bundled model
    at.file_uploader(key="home_upload").set_value(None).run()  # emptied, then the same file again: loaded
    _upload(at, "mine.safetensors", data)
    assert "uploaded" in at.session_state[app_state.KEY_BENCH].origin


def test_upload_valid_checkpoint_replaces_the_dense_model():
    at = open_app("moons_mlp", "1_home")
    model = app_state.shared_model("moons_mlp")
    changed = {k: v * 0.5 for k, v in model.state_dict().items()}
    from safetensors.torch import save

    _upload(at, "mine.safetensors", save(changed))
    assert at.success and "Loaded mine.safetensors" in at.success[-1].value
    wb = at.session_state[app_state.KEY_BENCH]
    assert "uploaded" in wb.origin
    assert torch.allclose(wb.dense.fc1.weight, model.fc1.weight * 0.5)
    buf = io.BytesIO()
    torch.save(changed, buf)
    _upload(at, "mine.pt", buf.getvalue())
    assert "Loaded mine.pt" in at.success[-1].value


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/sparsity_viz_pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("case", ["corrupt", "wrong_arch", "pickle_exploit", "empty", "nan_weights", "huge_weights"])
def test_bad_uploads_give_a_clear_error_and_the_app_keeps_working(case):
    if os.path.exists("/tmp/sparsity_viz_pwned"):
        os.remove("/tmp/sparsity_viz_pwned")
    at = open_app("lenet300", "1_home")
    if case == "corrupt":
        name, data = "broken.safetensors", b"\x00\x01 definitely not safetensors" * 10
    elif case == "wrong_arch":
        name, data = "moons.safetensors", state_dict_to_bytes(app_state.shared_model("moons_mlp"))
    elif case == "pickle_exploit":
        name, data = "evil.pt", pickle.dumps({"fc1.weight": _Exploit()})
    elif case == "nan_weights":
        broken = copy.deepcopy(app_state.shared_model("lenet300"))
        with torch.no_grad():
            broken.fc2.weight[0, :3] = float("nan")
        name, data = "nan.safetensors", state_dict_to_bytes(broken)
    elif case == "huge_weights":  # finite, but every logit overflows to inf
        broken = copy.deepcopy(app_state.shared_model("lenet300"))
        with torch.no_grad():
            for p in broken.parameters():
                p.fill_(3e38)
        name, data = "huge.safetensors", state_dict_to_bytes(broken)
    else:
        name, data = "empty.pt", b""
    _upload(at, name, data)
    assert at.error, "a bad upload must show st.error"
    assert f"Could not load {name}" in at.error[-1].value
    if case == "nan_weights":
        assert "NaN" in at.error[-1].value and "fc2.weight" in at.error[-1].value
    if case == "huge_weights":
        assert "outputs overflow (inf or NaN) on 512 of 512 test samples" in at.error[-1].value
        assert "largest weight is 3e+38" in at.error[-1].value
    assert not os.path.exists("/tmp/sparsity_viz_pwned")
    assert at.session_state[app_state.KEY_BENCH].origin.startswith("dense (as trained)")
    at.switch_page("views/2_prune.py").run()
    check(at)
    at.slider(key="prune_sparsity").set_value(50).run()
    check(at)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="kaleido needs Debian's chromium on PATH")
def test_png_export_on_demand():
    at = open_app("moons_mlp", "2_prune")
    assert not [b for b in at.get("download_button") if b.key == "dl_png_prune_heatmap"]
    at.button(key="png_prune_heatmap").click().run(timeout=120)  # kaleido starts chromium: slow on a loaded machine
    check(at)
    assert not at.error, [e.value for e in at.error]
    assert [b for b in at.get("download_button") if b.key == "dl_png_prune_heatmap"]


def test_reset_returns_to_dense():
    at = open_app("xor_mlp", "2_prune")
    at.slider(key="prune_sparsity").set_value(80).run()
    at.button(key="sv_reset").click().run()
    check(at)
    assert at.slider(key="prune_sparsity").value == 0
    assert at.session_state[app_state.KEY_BENCH].sparsity == 0.0


def test_every_one_shot_registry_strategy_is_offered_and_runs():
    from sparsity_viz.pruning import one_shot_strategy_names

    at = open_app("moons_mlp", "2_prune")
    # registry labels, with the "slow" mark where benchmarks/live_prune.py measured a slow live step; the scheduled
    # strategies prune while they train (Compare, Curves, Survival maps), not on the slider
    names = one_shot_strategy_names()
    assert at.selectbox(key="prune_strategy").options == [app_state.strategy_label(n, "moons_mlp") for n in names]
    at.slider(key="prune_sparsity").set_value(50).run()
    for name in names:
        at.selectbox(key="prune_strategy").set_value(name).run()
        check(at)
        assert not at.error, (name, [e.value for e in at.error])
        assert at.session_state[app_state.KEY_BENCH].prune_config.strategy == name


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_choice_without_gpu_warns_and_falls_back_to_cpu():
    at = open_app("digits_mlp", "2_prune")
    at.selectbox(key="sv_device").set_value("cuda").run()
    check(at)
    assert any("No CUDA GPU" in w.value for w in at.warning)
    at.slider(key="prune_sparsity").set_value(70).run()
    check(at)
    assert at.session_state[app_state.KEY_BENCH].sparsity == pytest.approx(0.7, abs=0.01)


def test_upload_the_apps_own_sparse_checkpoint_counts_stored_zeros_as_pruned():
    from sparsity_viz.backend import save_sparse
    from sparsity_viz.pruning import prune

    pruned = prune(app_state.shared_model("lenet300"), "magnitude", 0.9)
    at = open_app("lenet300", "1_home")
    _upload(at, "lenet300_90pct_sparse.safetensors", save_sparse(pruned.model, masks=pruned.masks).data)
    assert not at.error, [e.value for e in at.error]
    assert at.success and "Loaded lenet300_90pct_sparse.safetensors" in at.success[-1].value
    wb = at.session_state[app_state.KEY_BENCH]
    assert wb.sparsity == pytest.approx(0.9, abs=1e-3)
    assert any("90.0 % of weights pruned" in c.value for c in at.sidebar.caption)
    at.switch_page("views/2_prune.py").run()  # the Prune page keeps the uploaded model, pruned as it is
    check(at)
    assert at.metric[1].value == "90.0 %"


def test_the_cache_table_in_docs_lists_every_cache_with_its_bounds():
    """docs/app.md said "Every cache is one CacheSpec" over a table of 13 of the 19 (an audit)."""
    from pathlib import Path

    from app_state.cache import SPECS

    text = (Path(__file__).resolve().parents[2] / "docs" / "app.md").read_text()
    table = text[text.index("| Cache | Scope | Key | Bounds |"):].split("\n\n")[0].splitlines()[2:]
    rows = [[cell.strip() for cell in row.strip("|").split("|")] for row in table]
    bounds = sorted((scope, b) for _, scope, _, b in rows)
    expected = sorted(("shared" if s.shared else "session", f"{s.max_entries} entries, {s.max_bytes // 2**20} MiB")
                      for s in SPECS.values())
    assert bounds == expected
