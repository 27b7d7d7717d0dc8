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
        "shape beyond float64": _tamper(data, layout=lambda lay: lay["fc2.weight"].update(shape=[10**200, 10**200])),
        "shape not the model's": _tamper(data, layout=lambda lay: lay["fc2.weight"].update(shape=[2**14, 2**14])),
        "weight the model lacks": _tamper(data, layout=lambda lay: lay.update(bogus=dict(lay["fc2.weight"]))),
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


def test_a_small_file_never_decodes_gigabytes(lenet300_compressed, tmp_path):
    """Found by an audit: a small file claiming 2**28 Huffman symbols made the decoder allocate 2 GiB before it found
    the stream too short, and bogus weights of 2**26 entries each were decoded before their names were checked.
    Loaded in a fresh process, whose peak memory before and after the loads is this test's alone."""
    import subprocess
    import sys

    _, _, _, data = lenet300_compressed
    claims = _tamper(data, layout=lambda lay: lay["fc3.weight"].update(shape=[2**14, 2**14], entries=2**28))
    bogus = _tamper(data, layout=lambda lay: lay.update({f"bogus{i}.weight": dict(lay["fc3.weight"], shape=[2**13, 2**13])
                                                          for i in range(4)}))
    paths = []
    for i, blob in enumerate((claims, bogus)):
        paths.append(tmp_path / f"hostile{i}.safetensors")
        paths[-1].write_bytes(blob)
    code = (
        "import resource, sys\n"
        "from sparsity_viz.checkpoints import CheckpointError\n"
        "from sparsity_viz.compression.checkpoint import load_compressed\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        load_compressed(path)\n"
        "    except CheckpointError as exc:\n"
        "        print('refused:', exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert sum(line.startswith("refused:") for line in lines) == 2, lines
    assert int(lines[-1]) < 128 * 1024, lines  # KB: under 128 MB more at the peak (the old code: 2 GiB and 1 GiB)


def test_the_huffman_decoder_refuses_more_symbols_than_the_bytes_hold():
    from sparsity_viz.compression import huffman

    data, table = huffman.encode([0, 1, 0, 0, 2, 0])
    assert huffman.decode(data, table, 6).tolist() == [0, 1, 0, 0, 2, 0]
    with pytest.raises(huffman.HuffmanError, match="cannot hold"):  # every symbol takes at least one bit
        huffman.decode(data, table, 8 * len(data) + 1)
