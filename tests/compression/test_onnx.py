"""ONNX export: onnxruntime gives the same predictions as torch on the test split; quantized weights stored as codes."""

import pytest
import torch

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")

from sparsity_viz.checkpoints import load_sample  # noqa: E402
from sparsity_viz.compression.onnx_export import check_onnx, export_onnx, export_sizes, run_onnx  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.pruning import prune  # noqa: E402
from sparsity_viz.quantization import quantize_model  # noqa: E402


@pytest.fixture(scope="module")
def lenet300_pruned():
    model, card = load_sample("lenet300")
    dataset = load_dataset(card["dataset"]["name"], seed=card["dataset"]["seed"])
    pruned, masks = prune(model, "global_magnitude", 0.9)
    return model, pruned, masks, dataset


def _ops(data: bytes) -> list[str]:
    return [node.op_type for node in onnx.load_from_string(data).graph.node]


def test_pruned_float_model_same_predictions(lenet300_pruned):
    _, pruned, _, dataset = lenet300_pruned
    export = export_onnx(pruned, example=dataset.x_test[:1])
    check = check_onnx(export, pruned, dataset.x_test)
    assert check.agree and check.samples == dataset.x_test.shape[0]
    assert check.max_abs_logit_diff < 1e-4
    assert set(export.weights.values()) == {"float"}


def test_kmeans_codebook_export(lenet300_pruned):
    _, pruned, masks, dataset = lenet300_pruned
    quantized = quantize_model(pruned, "kmeans", 5, masks=masks)
    export = export_onnx(quantized, example=dataset.x_test[:1])
    assert set(export.weights.values()) == {"codebook"} and _ops(export.data).count("Gather") == 3
    check = check_onnx(export, quantized.model, dataset.x_test)
    assert check.agree and check.max_abs_logit_diff < 1e-4
    # one uint8 code per weight instead of four float bytes
    assert export.nbytes < 0.3 * export_onnx(pruned, example=dataset.x_test[:1]).nbytes


def test_uniform_per_channel_is_qdq(lenet300_pruned):
    _, pruned, masks, dataset = lenet300_pruned
    quantized = quantize_model(pruned, "uniform_affine", 4, per_channel=True, masks=masks)
    export = export_onnx(quantized, example=dataset.x_test[:1])
    assert set(export.weights.values()) == {"qdq"} and _ops(export.data).count("DequantizeLinear") == 3
    init = {i.name: i for i in onnx.load_from_string(export.data).graph.initializer}
    assert init["fc1.weight_codes"].data_type == onnx.TensorProto.UINT8
    assert list(init["fc1.weight_scale"].dims) == [300]
    check = check_onnx(export, quantized.model, dataset.x_test)
    assert check.agree and check.max_abs_logit_diff < 1e-4


def test_conv_per_channel_codebook(tiny_conv):
    pruned, masks = prune(tiny_conv, "magnitude", 0.5)
    quantized = quantize_model(pruned, "ternary", 2, per_channel=True, masks=masks)
    export = export_onnx(quantized)
    assert "GatherElements" in _ops(export.data)
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(run_onnx(export.data, x)), quantized.model(x), atol=1e-5, rtol=1e-5)


def test_export_sizes(lenet300_pruned, tmp_path):
    model, pruned, masks, dataset = lenet300_pruned
    quantized = quantize_model(pruned, "kmeans", 5, masks=masks)
    sizes = export_sizes(model, quantized, masks=masks, example=dataset.x_test[:1]).set_index("format")["bytes"]
    assert sizes["dense safetensors"] > sizes["sparse safetensors"] > sizes["compressed (Huffman)"]
    assert sizes["ONNX quantized (kmeans)"] < sizes["ONNX float"] / 3
    path = tmp_path / "m.onnx"
    assert export_onnx(quantized, path, example=dataset.x_test[:1]).nbytes == path.stat().st_size
