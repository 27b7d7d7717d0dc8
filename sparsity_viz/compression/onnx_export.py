"""Export for the edge: a pruned and/or quantized model as an ONNX file a device runtime loads.

``export_onnx`` runs torch's TorchScript ONNX exporter (``dynamo=False``, opset 17) and
then rewrites each quantized weight initializer so the file stores codes, not floats:

* **uniform** methods (``uniform_symmetric``, ``uniform_affine``: they carry a scale and a
  zero point): QDQ form, the weight stored as a uint8 initializer feeding a
  ``DequantizeLinear`` node (per tensor, or per output channel with ``axis=0``), which
  computes ``(code - zero_point) * scale``, the same float32 arithmetic as
  ``QuantizedTensor.dequantize``. No ``QuantizeLinear`` is needed for constant weights.
* **codebook** methods (``kmeans``, ``ternary``: arbitrary levels, no affine grid that
  ``DequantizeLinear`` could express): the codes as a uint8 initializer, the levels as a
  small float32 one, and ``Cast`` + ``Gather`` (per channel ``GatherElements``) rebuilding
  the weight, so the values are exactly the dequantized ones.
* a plain (pruned) model: float32 initializers, zeros stored densely: ONNX runtimes run
  dense initializers, so pruning alone does not shrink an ONNX file.

Codes take one byte each (uint8) whatever ``bits`` is; ONNX's 4-bit types exist (opset
21) but are not used here. Activations stay float32 (weight-only quantization).
``onnx`` and ``onnxruntime`` are optional (the ``onnx`` extra); importing this module
does not need them, calling it does (an ``ImportError`` saying how to install them).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..atomic_write import write_atomically
from ..checkpoints import state_dict_to_bytes
from ..models import MLP, LeNet5

OPSET = 17
INPUT, OUTPUT = "input", "logits"


def _require():
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(f"ONNX export needs the onnx extra: pip install -e '.[onnx]' ({exc}).") from None
    return onnx, onnxruntime


@dataclass(frozen=True)
class OnnxExport:
    """The ONNX file's bytes and, per prunable weight, how it is stored (float / qdq / codebook)."""

    data: bytes
    weights: dict[str, str] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return len(self.data)


def default_example(model: nn.Module) -> torch.Tensor:
    """A one-sample input: ``(1, in_features)`` for an MLP, ``(1, 1, 28, 28)`` for LeNet-5."""
    if isinstance(model, MLP):
        return torch.zeros(1, model.in_features)
    if isinstance(model, LeNet5):
        return torch.zeros(1, model.conv1.in_channels, 28, 28)
    raise ValueError(f"give an example input for a {type(model).__name__} (no default shape).")


def export_onnx(source, path: str | Path | None = None, *, example: torch.Tensor | None = None,
                opset: int = OPSET) -> OnnxExport:
    """ONNX bytes of a model or a ``QuantizedModel`` (quantized weights as codes; see module doc).

    ``example``: one input batch fixing the input's trailing shape (the batch size is dynamic).
    """
    onnx, _ = _require()
    from onnx import helper, numpy_helper

    tensors = dict(getattr(source, "tensors", {}) or {})
    model = source.model if hasattr(source, "tensors") else source
    if not isinstance(model, nn.Module):
        raise ValueError(f"export_onnx needs an nn.Module or a QuantizedModel, got {type(source).__name__}.")
    model = model.eval()
    example = default_example(model) if example is None else example[:1].detach().cpu().float()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    graph = proto.graph
    inits = {init.name: init for init in graph.initializer}
    kinds = {name: "float" for name in inits if name.endswith(".weight")}
    new_nodes = []
    for name, qt in tensors.items():
        if name not in inits:
            raise ValueError(f"the exported graph has no initializer {name!r} to quantize.")
        graph.initializer.remove(inits[name])
        codes = qt.codes.detach().cpu().numpy()
        if int(codes.max(initial=0)) > 255:
            raise ValueError(f"{name}: codes beyond 255 do not fit uint8.")
        codes_init = numpy_helper.from_array(codes.astype(np.uint8), f"{name}_codes")
        if qt.scale is not None and qt.zero_point is not None:
            scale = qt.scale.detach().cpu().to(torch.float32).numpy().reshape(-1)
            zero = qt.zero_point.detach().cpu().numpy().reshape(-1)
            if zero.min(initial=0) < 0 or zero.max(initial=0) > 255:
                raise ValueError(f"{name}: zero points outside 0..255 do not fit uint8.")
            per_axis = bool(qt.per_channel)
            scale_arr = scale if per_axis else np.float32(scale[0])
            zero_arr = zero.astype(np.uint8) if per_axis else np.uint8(zero[0])
            graph.initializer.extend([codes_init, numpy_helper.from_array(np.asarray(scale_arr, np.float32), f"{name}_scale"),
                                      numpy_helper.from_array(np.asarray(zero_arr, np.uint8), f"{name}_zero_point")])
            attrs = {"axis": 0} if per_axis else {}
            new_nodes.append(helper.make_node("DequantizeLinear", [codes_init.name, f"{name}_scale", f"{name}_zero_point"],
                                              [name], name=f"{name}_dequantize", **attrs))
            kinds[name] = "qdq"
        else:
            levels = qt.levels.detach().cpu().to(torch.float32).numpy()
            graph.initializer.extend([codes_init, numpy_helper.from_array(levels, f"{name}_levels")])
            new_nodes.append(helper.make_node("Cast", [codes_init.name], [f"{name}_index"], to=onnx.TensorProto.INT64,
                                              name=f"{name}_cast"))
            if levels.ndim == 1:
                new_nodes.append(helper.make_node("Gather", [f"{name}_levels", f"{name}_index"], [name], name=f"{name}_lookup"))
            else:
                shape = numpy_helper.from_array(np.array(codes.shape, dtype=np.int64), f"{name}_shape")
                rows = numpy_helper.from_array(np.array([codes.shape[0], -1], dtype=np.int64), f"{name}_rows")
                graph.initializer.extend([shape, rows])
                new_nodes += [
                    helper.make_node("Reshape", [f"{name}_index", rows.name], [f"{name}_index2d"], name=f"{name}_rows"),
                    helper.make_node("GatherElements", [f"{name}_levels", f"{name}_index2d"], [f"{name}_2d"], axis=1,
                                     name=f"{name}_lookup"),
                    helper.make_node("Reshape", [f"{name}_2d", shape.name], [name], name=f"{name}_reshape"),
                ]
            kinds[name] = "codebook"
    for i, node in enumerate(new_nodes):  # the weights first: the graph stays topologically sorted
        graph.node.insert(i, node)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if path is not None:
        write_atomically(path, data)
    return OnnxExport(data, kinds)


def run_onnx(data: bytes, x: torch.Tensor) -> np.ndarray:
    """Logits from onnxruntime (CPU) for the batch ``x``."""
    _, ort = _require()
    session = ort.InferenceSession(bytes(data), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape[1:]
    feed = x.detach().cpu().float().reshape(x.shape[0], *[int(d) for d in shape]).numpy()
    return session.run([OUTPUT], {INPUT: feed})[0]


@dataclass(frozen=True)
class OnnxCheck:
    """onnxruntime against torch on the same inputs."""

    samples: int
    same_predictions: int  # argmax agreement
    max_abs_logit_diff: float

    @property
    def agree(self) -> bool:
        return self.same_predictions == self.samples


def check_onnx(export: OnnxExport | bytes, model: nn.Module, x: torch.Tensor) -> OnnxCheck:
    """Run the ONNX file with onnxruntime and ``model`` with torch on ``x``; compare."""
    data = export.data if isinstance(export, OnnxExport) else export
    ort_logits = run_onnx(data, x)
    with torch.no_grad():
        ref = model.eval()(x.float()).numpy()
    return OnnxCheck(int(x.shape[0]), int((ort_logits.argmax(1) == ref.argmax(1)).sum()),
                     float(np.abs(ort_logits - ref).max()) if ref.size else 0.0)


def export_sizes(model: nn.Module, quantized=None, *, masks=None, example: torch.Tensor | None = None) -> pd.DataFrame:
    """Whole-file bytes of every format the project writes, and the ratio to the dense file.

    Rows: dense safetensors (fp32 state dict), sparse safetensors (``backend.save_sparse``),
    ONNX float (the pruned model), and with ``quantized``: the compressed checkpoint
    (``save_compressed``: Huffman streams) and ONNX quantized (QDQ or codebook).
    """
    from ..backend.sparse_checkpoint import save_sparse
    from ..masks import masked_copy
    from .checkpoint import save_compressed

    pruned = masked_copy(model, masks) if masks is not None else model
    rows = [("dense safetensors", len(state_dict_to_bytes(model))),
            ("sparse safetensors", save_sparse(pruned).nbytes),
            ("ONNX float", export_onnx(pruned, example=example).nbytes)]
    if quantized is not None:
        rows.append(("compressed (Huffman)", len(save_compressed(quantized))))
        rows.append((f"ONNX quantized ({quantized.method})", export_onnx(quantized, example=example).nbytes))
    frame = pd.DataFrame(rows, columns=["format", "bytes"])
    frame["ratio"] = frame["bytes"].iloc[0] / frame["bytes"]
    return frame
