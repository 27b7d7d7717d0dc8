"""Home's "your own model": spec + checkpoint (+ CSV / NPZ) through the real file uploaders, then the pages.

AppTest drives ``st.file_uploader`` (``set_value((name, bytes, mime))``) in this Streamlit version, so the
files travel the same path as in a browser; the "Load my model" button's callback builds the model.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

import app_state
from apptools import PAGES, check, open_app
from sparsity_viz.arch_spec import build_from_spec, spec_of
from sparsity_viz.checkpoints import SAMPLE_DIR, load_card, state_dict_to_bytes

SPEC = {"name": "blobnet", "input": [4], "layers": [
    {"name": "dense_in", "type": "linear", "in": 4, "out": 16}, {"type": "tanh"}, {"type": "dropout", "p": 0.1},
    {"name": "dense_out", "type": "linear", "in": 16, "out": 3}]}


def _csv(features: int = 4, rows_per_class: int = 30) -> bytes:
    rng = np.random.default_rng(0)
    lines = [",".join(f"f{j}" for j in range(features)) + ",label"]
    for c, name in enumerate(("setosa", "versicolor", "virginica")):
        for _ in range(rows_per_class):
            lines.append(",".join(f"{v:.4f}" for v in rng.normal(2.0 * c, 0.5, features)) + f",{name}")
    return ("\n".join(lines) + "\n").encode()


def _weights(spec: dict, seed: int = 0) -> bytes:
    return state_dict_to_bytes(build_from_spec(spec, seed=seed))


def _huge(spec: dict) -> bytes:
    """Finite weights so large that every output overflows."""
    model = build_from_spec(spec, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3e38)
    return state_dict_to_bytes(model)


def _upload(at, spec: bytes | None, ckpt: bytes | None, data: bytes | None = None, data_name: str = "blobs.csv"):
    for key, value, name, mime in ((app_state.keys.OWN_SPEC_FILE, spec, "blobnet.spec.json", "application/json"),
                                   (app_state.keys.OWN_CKPT_FILE, ckpt, "blobnet.safetensors", "application/octet-stream"),
                                   (app_state.keys.OWN_DATA_FILE, data, data_name, "text/csv")):
        at.file_uploader(key=key).set_value(None if value is None else (name, value, mime))
    at.run()
    at.button(key="home_own_load").click().run()
    check(at)
    return at


def _bench(at):
    return at.session_state[app_state.KEY_BENCH]


@pytest.fixture(scope="module")
def files():
    return json.dumps(SPEC).encode(), _weights(SPEC), _csv()


def test_own_model_with_csv_then_prune_and_weights_and_bad_files_keep_it(files):
    spec, ckpt, data = files
    at = _upload(open_app("moons_mlp"), spec, ckpt, data)
    assert not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("Loaded your model blobnet_") for s in at.success)
    wb = _bench(at)
    assert wb.name.startswith("blobnet_") and wb.dataset.startswith("blobs.csv #")
    assert at.selectbox(key="sv_model").value == wb.name
    assert at.selectbox(key="sv_dataset").options == [wb.dataset]  # 4 features, 3 classes: no bundled data fits
    assert list(wb.dense.state_dict())[:2] == ["dense_in.weight", "dense_in.bias"]

    at.switch_page("views/2_prune.py").run()
    check(at)
    at.slider(key="prune_sparsity").set_value(50).run()
    check(at)
    assert not at.error, [e.value for e in at.error]
    assert _bench(at).name == wb.name and _bench(at).sparsity == pytest.approx(0.5, abs=0.01)
    at.switch_page("views/4_weights.py").run()
    check(at)
    assert at.selectbox(key="weights_layer").options == ["dense_in", "dense_out"]
    pruned = _bench(at)

    at.switch_page("views/1_home.py").run()
    bad_cases = [
        (json.dumps({**SPEC, "layers": [{"name": "x", "type": "__import__"}]}).encode(), ckpt, data,
         "unknown layer type '__import__'"),
        (spec, _weights({**SPEC, "layers": [{**SPEC["layers"][0], "out": 8}, *SPEC["layers"][1:3],
                                            {**SPEC["layers"][3], "in": 8}]}), data,
         "shape mismatch dense_in.weight: checkpoint (8, 4) vs model (16, 4)"),
        (spec, ckpt, _csv(features=3), "The model takes samples of shape (4,) (4 values); blobs.csv has samples of "
                                       "shape (3,)"),
        (spec, ckpt, b"f0,f1,f2,f3,label\n" + b"1,2,3,inf,a\n1,2,3,4,b\n1,2,3,4,c\n" * 6, "NaN or infinite value(s)"),
        (spec, b"not a checkpoint", data, "not a valid safetensors file"),
        (spec, ckpt, None, "no bundled dataset has samples of shape (4,) with 3 classes"),
        (b"\xff\xfe", ckpt, data, "not UTF-8 text"),
        (spec, _huge(SPEC), data, "blobnet.safetensors: the model's outputs overflow (inf or NaN) on 18 of 18 test samples"),
    ]
    for bad_spec, bad_ckpt, bad_data, message in bad_cases:
        _upload(at, bad_spec, bad_ckpt, bad_data)
        assert len(at.error) == 1 and message in at.error[0].value, (message, [e.value for e in at.error])
        assert "keeps using the previous model" in at.error[0].value
        assert _bench(at) is pruned  # the pruned own model stays, untouched
    at.switch_page("views/4_weights.py").run()
    check(at)
    assert _bench(at) is pruned


def test_bundled_spec_and_checkpoint_without_data_reproduce_the_bundled_model():
    at = open_app("moons_mlp")
    spec = json.dumps(spec_of("digits_mlp")).encode()
    _upload(at, spec, (SAMPLE_DIR / "digits_mlp.safetensors").read_bytes())
    assert not at.error, [e.value for e in at.error]
    wb = _bench(at)
    assert wb.dataset == "digits" and wb.name.startswith("digits_mlp_")
    card = load_card("digits_mlp")
    assert f"test accuracy {100 * card['test_accuracy']:.1f} % on digits" in at.success[0].value
    # a checkpoint of the own model through the first uploader is checked against its spec
    state = wb.dense.state_dict()
    state["fc1.weight"] = torch.where(torch.arange(state["fc1.weight"].numel()).reshape(state["fc1.weight"].shape) % 4
                                      == 0, 0.0, state["fc1.weight"])
    at.file_uploader(key="home_upload").set_value(("pruned.safetensors",
                                                   _state_bytes(state), "application/octet-stream")).run()
    check(at)
    assert _bench(at).name == wb.name and _bench(at).card["own"]
    assert _bench(at).masks["fc1.weight"].sum() == 3 * state["fc1.weight"].numel() // 4


def _state_bytes(state) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})


def _points_case():
    spec = {"name": "toy", "input": [2], "layers": [
        {"name": "hidden", "type": "linear", "in": 2, "out": 8}, {"type": "relu"},
        {"name": "logits", "type": "linear", "in": 8, "out": 2}]}
    x = np.random.default_rng(1).normal(size=(60, 2))
    return spec, _npz(x=x, y=(x[:, 0] > 0).astype(np.int64)), "pts.npz", ["moons", "circles", "xor", "spiral"]


def _image_case():
    spec = {"name": "convy", "input": [1, 8, 8], "layers": [
        {"name": "conv1", "type": "conv2d", "in": 1, "out": 4, "kernel": 3},
        {"name": "bn1", "type": "batchnorm2d", "features": 4}, {"type": "relu"}, {"type": "maxpool2d", "kernel": 2},
        {"type": "flatten"}, {"name": "fc1", "type": "linear", "in": 36, "out": 3}]}
    x = np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8)
    return spec, _npz(x=x, y=np.arange(60) % 3), "img.npz", []


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _sequence_case():  # an audit: conv1d weights and activations raised on four pages
    spec = {"name": "seq", "input": [1, 8], "layers": [
        {"name": "c1", "type": "conv1d", "in": 1, "out": 4, "kernel": 3}, {"type": "gelu"},
        {"type": "maxpool1d", "kernel": 2}, {"type": "flatten"}, {"name": "fc", "type": "linear", "in": 12, "out": 3}]}
    x = np.random.default_rng(2).normal(size=(60, 1, 8)).astype(np.float32)
    return spec, _npz(x=x, y=np.arange(60) % 3), "seq.npz", []


def _rgba_case():  # an audit: the Activations page reshaped a 4-channel image to (H, W)
    spec = {"name": "rgba", "input": [4, 6, 6], "layers": [
        {"name": "c", "type": "conv2d", "in": 4, "out": 2, "kernel": 3}, {"type": "relu"}, {"type": "flatten"},
        {"name": "fc", "type": "linear", "in": 32, "out": 2}]}
    x = np.random.default_rng(3).normal(size=(60, 4, 6, 6)).astype(np.float32)
    return spec, _npz(x=x, y=np.arange(60) % 2), "rgba.npz", []


def _single_layer_case():  # an audit: no hidden activation made the Activations page raise
    spec = {"name": "one", "input": [10], "layers": [{"name": "fc", "type": "linear", "in": 10, "out": 2}]}
    x = np.random.default_rng(4).normal(size=(60, 10))
    return spec, _npz(x=x, y=(x[:, 1] > 0).astype(np.int64)), "one.npz", []


CASES = {"2-D points (npz)": _points_case, "4 features (csv)": lambda: (SPEC, _csv(), "blobs.csv", []),
         "8x8 images, conv + batchnorm (npz)": _image_case, "sequences, conv1d (npz)": _sequence_case,
         "4-channel images (npz)": _rgba_case, "one linear layer (npz)": _single_layer_case}


@pytest.mark.parametrize("case", list(CASES))
def test_own_model_walks_every_page_pruned_and_other_sessions_never_see_it(case):
    spec, data, data_name, bundled = CASES[case]()
    at = _upload(open_app("moons_mlp"), json.dumps(spec).encode(), _weights(spec), data, data_name)
    assert not at.error, [e.value for e in at.error]
    wb = _bench(at)
    assert at.selectbox(key="sv_dataset").options == [wb.dataset, *bundled]
    at.switch_page("views/2_prune.py").run()
    at.slider(key="prune_sparsity").set_value(80).run()
    check(at)
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        check(at)
        assert at.title and at.markdown, page
        assert _bench(at).name == wb.name, f"{page} lost the own model"
        assert _bench(at).sparsity == pytest.approx(0.8, abs=0.02), f"{page} lost the pruned model"
    at.switch_page("views/13_quantize.py").run()  # an audit: the compressed checkpoint raised for every own model
    at.button(key="quant_ckpt").click().run()
    check(at)
    assert any(i.value.startswith("No compressed checkpoint for this model: cannot record the architecture")
               for i in at.info)
    other = open_app()
    assert wb.name not in other.selectbox(key="sv_model").options
    assert app_state.keys.OWN_BENCH not in other.session_state


def test_bundled_weights_under_another_activation_share_nothing_with_the_bundled_model():
    """An upload of moons_mlp's own weights under tanh got the other session's pruned ReLU model, its masks and
    its curves: every cache was keyed by the weights alone (an audit)."""
    from sparsity_viz.arch_spec import spec_json
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.session import architecture_fingerprint

    relu = open_app("moons_mlp", "2_prune")
    relu.slider(key="prune_sparsity").set_value(50).run()
    check(relu)
    relu_current = _bench(relu).current
    spec = json.loads(spec_json("moons_mlp")) | {"name": "moons_tanh"}
    for layer in spec["layers"]:
        layer["type"] = "tanh" if layer["type"] == "relu" else layer["type"]
    weights = state_dict_to_bytes(load_sample("moons_mlp")[0])
    tanh = open_app("moons_mlp")
    for key, value, name in ((app_state.keys.OWN_SPEC_FILE, json.dumps(spec).encode(), "moons_tanh.spec.json"),
                             (app_state.keys.OWN_CKPT_FILE, weights, "moons_tanh.safetensors")):
        tanh.file_uploader(key=key).set_value((name, value, "application/octet-stream"))
    tanh.run()
    tanh.button(key="home_own_load").click().run()
    check(tanh)
    tanh.switch_page("views/2_prune.py").run()
    tanh.slider(key="prune_sparsity").set_value(50).run()
    check(tanh)
    wb = _bench(tanh)
    assert "Tanh" in repr(wb.dense) and "ReLU" in repr(relu_current)
    assert architecture_fingerprint(wb.current) == architecture_fingerprint(wb.dense)
    assert wb.current is not relu_current and "Tanh" in repr(wb.current)
    expected = build_from_spec(spec, seed=0)  # the tanh model pruned by its own masks
    expected.load_state_dict({k: v * wb.masks[k] if k in wb.masks else v for k, v in wb.dense.state_dict().items()})
    x = torch.randn(64, 2)
    torch.testing.assert_close(wb.current(x), expected(x))
