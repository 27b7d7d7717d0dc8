"""Compressed checkpoints load back to the quantized model exactly; hostile bytes are one CheckpointError."""

import json

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from sparsity_viz.backend.sparse_checkpoint import save_sparse
from sparsity_viz.checkpoints import CheckpointError, load_sample, state_dict_to_bytes
from sparsity_viz.compression.checkpoint import load_compressed, save_compressed
from sparsity_viz.data import load_dataset
from sparsity_viz.pruning import prune
from sparsity_viz.quantization import quantize_model


@pytest.fixture(scope="module")
def lenet300_compressed():
    model, card = load_sample("lenet300")
    dataset = load_dataset(card["dataset"]["name"], seed=card["dataset"]["seed"])
    pruned, masks = prune(model, "global_magnitude", 0.9)
    quantized = quantize_model(pruned, "kmeans", 5, masks=masks)
    return pruned, quantized, dataset, save_compressed(quantized)


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_round_trip_same_weights_and_predictions(lenet300_compressed, tmp_path):
    pruned, quantized, dataset, data = lenet300_compressed
    loaded = load_compressed(data)
    _assert_same_weights(loaded, quantized.model)
    with torch.no_grad():
        assert torch.equal(loaded(dataset.x_test).argmax(1), quantized.model(dataset.x_test).argmax(1))
    path = tmp_path / "lenet300.safetensors"
    written = save_compressed(quantized, path)  # safetensors orders its metadata map freely: compare sizes
    assert path.read_bytes() == written and len(written) == len(data)
    _assert_same_weights(load_compressed(path), quantized.model)
    # smaller than the sparse fp32 checkpoint, far smaller than the dense one
    assert len(data) < save_sparse(pruned).nbytes / 4 and len(data) < len(state_dict_to_bytes(pruned)) / 30


@pytest.mark.parametrize(("method", "bits", "per_channel"), [
    ("uniform_affine", 4, True), ("uniform_symmetric", 3, False), ("ternary", 2, True),
])
def test_round_trip_other_methods_and_conv(tiny_conv, method, bits, per_channel):
    pruned, masks = prune(tiny_conv, "magnitude", 0.6)
    quantized = quantize_model(pruned, method, bits, per_channel=per_channel, masks=masks)
    _assert_same_weights(load_compressed(save_compressed(quantized)), quantized.model)


def _tamper(data: bytes, *, layout=None, drop=None, replace=None) -> bytes:
    tensors = dict(st_load(data))
    header_len = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + header_len])["__metadata__"]
    if layout is not None:
        lay = json.loads(meta["layout"])
        layout(lay)
        meta["layout"] = json.dumps(lay)
    if drop:
        tensors.pop(drop)
    if replace:
        tensors.update(replace)
    return st_save(tensors, metadata=meta)


def test_hostile_bytes_are_one_checkpoint_error(lenet300_compressed):
    _, quantized, _, data = lenet300_compressed
    cases = {
        "random": bytes(range(256)) * 8,
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "dense safetensors": state_dict_to_bytes(quantized.model),
        "more entries than the stream holds": _tamper(data, layout=lambda lay: lay["fc1.weight"].update(entries=10**6)),
        "negative shape": _tamper(data, layout=lambda lay: lay["fc2.weight"].update(shape=[-1, 300])),
        "missing codes": _tamper(data, drop="fc3.weight::codes"),
        "wrong dtype stream": _tamper(data, replace={"fc3.weight::gaps": torch.zeros(3, dtype=torch.int32)}),
        "codebook too short": _tamper(data, replace={"fc1.weight::levels": torch.zeros(2)}),
        "stray tensor": _tamper(data, replace={"fc9.weight::codes": torch.zeros(1, dtype=torch.uint8)}),
    }
    for what, blob in cases.items():
        with pytest.raises(CheckpointError) as info:
            load_compressed(blob)
        message = str(info.value)
        assert message and "\n" not in message, what


def test_uniform_scale_must_be_positive(tiny_mlp):
    quantized = quantize_model(tiny_mlp, "uniform_symmetric", 4)
    bad = _tamper(save_compressed(quantized), replace={"fc1.weight::scale": torch.tensor([-1.0])})
    with pytest.raises(CheckpointError, match="scale"):
        load_compressed(bad)
