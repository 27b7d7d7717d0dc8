"""Compressed checkpoints: Deep Compression's Huffman-coded streams in a safetensors file.

``save_compressed`` writes, per quantized weight ``W`` (``size.encode_layer``):
``W::codes`` and ``W::gaps`` (the Huffman-coded codes and relative indices, as uint8
tensors), ``W::codes_table`` / ``W::gaps_table`` (canonical code tables, code lengths
only) and ``W::levels`` (the float32 codebook). Every other tensor of the state dict
(biases, buffers) is stored as it is. The metadata holds the format tag, the layout
(shape, entry count, bits, index bits, method per weight) as JSON and the architecture
(``backend.sparse_checkpoint.architecture_metadata``), so ``load_compressed`` rebuilds the
model without being told what it is.

Reading trusts nothing: bytes that are not safetensors, another format, a layout that
does not match its tensors, a Huffman stream that does not decode to the promised
count, positions or codes out of range: each is one ``CheckpointError`` (a
``ValueError``) with a one-line message. Nothing is unpickled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save as st_save
from torch import nn

from .. import bounded_json
from ..atomic_write import write_atomically
from ..backend.sparse_checkpoint import architecture_metadata
from ..checkpoints import CheckpointError, load_into, read_checkpoint_file, read_safetensors
from ..models import build_from_metadata
from . import huffman
from .size import codebook_tensors, encode_layer, positions_from_gaps, uniform_levels

FORMAT = "sparsity_viz-compressed/1"
MAX_DECODED_ENTRIES = 2**28  # a small hostile file must not make us allocate terabytes
_PARTS = ("codes", "gaps", "codes_table", "gaps_table", "levels", "scale", "zero_point")


def _u8(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)


def save_compressed(quantized, path: str | Path | None = None, index_bits: int | None = None) -> bytes:
    """The compressed checkpoint of a ``QuantizedModel`` as bytes (written to ``path`` if given)."""
    arch = architecture_metadata(quantized.model)
    if not arch:
        raise ValueError(f"cannot record the architecture of a {type(quantized.model).__name__} "
                         "(known: the registry's MLP and LeNet5).")
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, dict] = {}
    for name, qt in quantized.tensors.items():
        enc = encode_layer(qt, index_bits)
        tensors[f"{name}::codes"] = _u8(enc.codes_huffman)
        tensors[f"{name}::gaps"] = _u8(enc.gaps_huffman)
        tensors[f"{name}::codes_table"] = _u8(enc.codes_table.to_bytes())
        tensors[f"{name}::gaps_table"] = _u8(enc.gaps_table.to_bytes())
        for part, t in codebook_tensors(qt).items():
            tensors[f"{name}::{part}"] = t
        layout[name] = {"shape": list(enc.shape), "entries": enc.entries, "bits": enc.bits,
                        "index_bits": enc.index_bits, "method": qt.method, "per_channel": bool(qt.per_channel)}
    for name, t in quantized.model.state_dict().items():
        if name not in layout:
            tensors[name] = t.detach().cpu().contiguous()
    meta = {"format": FORMAT, "layout": json.dumps(layout), **{k: json.dumps(v) for k, v in arch.items()}}
    data = st_save(tensors, metadata=meta)
    if path is not None:
        write_atomically(path, data)
    return data


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise CheckpointError(what)


def _stream(tensors: dict[str, torch.Tensor], key: str) -> bytes:
    t = tensors.get(key)
    _expect(t is not None, f"{key} is missing.")
    _expect(t.dtype == torch.uint8 and t.dim() == 1, f"{key} must be a 1-D uint8 tensor, got {t.dtype} {tuple(t.shape)}.")
    return t.numpy().tobytes()


def _uniform_codebook(tensors: dict[str, torch.Tensor], name: str, entry: dict, shape: list[int]) -> torch.Tensor:
    """Levels rebuilt from a stored scale and zero point (uniform methods)."""
    scale, zero, bits = tensors[f"{name}::scale"], tensors.get(f"{name}::zero_point"), entry.get("bits")
    _expect(isinstance(bits, int) and not isinstance(bits, bool) and 1 <= bits <= 8, f"bits {bits!r} is not in 1..8.")
    _expect(zero is not None and zero.dtype == torch.uint8 and scale.dtype == torch.float32
            and scale.dim() == zero.dim() == 1 and scale.numel() == zero.numel() and scale.numel() in (1, shape[0]),
            "scale and zero point must be float32 / uint8 vectors of one entry or one per channel.")
    _expect(bool(torch.isfinite(scale).all()) and bool((scale > 0).all()), "a scale is not a positive finite number.")
    levels = uniform_levels(scale, zero, bits)
    return levels[0] if entry.get("per_channel") is False and levels.shape[0] == 1 else levels


def _decode_weight(name: str, entry, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    _expect(isinstance(entry, dict), "its layout entry is not a mapping.")
    shape, entries = entry.get("shape"), entry.get("entries")
    _expect(isinstance(shape, list) and len(shape) >= 1
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape),
            f"shape {shape!r} is not a list of positive integers.")
    numel = math.prod(shape)  # exact: float64 overflowed to inf for shapes like [10**200, 10**200] (OverflowError)
    _expect(numel <= MAX_DECODED_ENTRIES, f"shape {shape} has more than {MAX_DECODED_ENTRIES} entries.")
    _expect(isinstance(entries, int) and not isinstance(entries, bool) and 0 <= entries <= numel,
            f"{entries!r} stored entries for {numel} weights.")
    levels = tensors.get(f"{name}::levels")
    if levels is None and f"{name}::scale" in tensors:
        levels = _uniform_codebook(tensors, name, entry, shape)
    _expect(levels is not None and levels.dtype == torch.float32 and levels.dim() in (1, 2) and levels.shape[-1] > 0,
            "the codebook is missing or not a 1-D / 2-D float32 tensor.")
    _expect(levels.dim() == 1 or levels.shape[0] == shape[0],
            f"a per-channel codebook has {levels.shape[0]} rows for {shape[0]} channels.")
    try:
        codes_table = huffman.CodeTable.from_bytes(_stream(tensors, f"{name}::codes_table"))
        gaps_table = huffman.CodeTable.from_bytes(_stream(tensors, f"{name}::gaps_table"))
        codes = huffman.decode(_stream(tensors, f"{name}::codes"), codes_table, entries)
        gaps = huffman.decode(_stream(tensors, f"{name}::gaps"), gaps_table, entries)
    except huffman.HuffmanError as exc:
        raise CheckpointError(f"the Huffman streams do not decode ({exc})") from None
    positions = positions_from_gaps(gaps)
    _expect(positions.size == 0 or int(positions[-1]) < numel,
            f"the relative indices run past the {numel} weights.")
    _expect(codes.size == 0 or int(codes.max()) < levels.shape[-1],
            f"a code exceeds the codebook's {levels.shape[-1]} levels.")
    flat = torch.zeros(numel, dtype=torch.float32)
    pos, cod = torch.from_numpy(positions), torch.from_numpy(codes)
    if levels.dim() == 1:
        flat[pos] = levels[cod]
    else:
        flat[pos] = levels[pos // (numel // shape[0]), cod]
    return flat.view(shape)


def load_compressed(data: bytes | str | Path) -> nn.Module:
    """The model stored by ``save_compressed`` (eval mode), weights equal to the quantized model's.

    Raises:
        CheckpointError: unreadable, another format, or a layout / stream that does not decode (one line).
    """
    if isinstance(data, (str, Path)):
        data, name = read_checkpoint_file(data), Path(data).name
    else:
        data, name = bytes(data), "compressed checkpoint"
    tensors, meta = read_safetensors(data, name)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a sparsity_viz compressed checkpoint (format {meta.get('format')!r}, "
                              f"expected {FORMAT!r}).")
    try:
        layout = bounded_json.loads(meta["layout"])
        model = build_from_metadata(bounded_json.loads(meta["architecture"]), bounded_json.loads(meta["kwargs"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: the layout or architecture metadata is missing or invalid "
                              f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}).") from None
    _expect(isinstance(layout, dict), f"{name}: the layout is not a mapping of weight names.")
    expected = {f"{w}::{p}" for w in layout for p in _PARTS}
    state = {k: v for k, v in tensors.items() if "::" not in k}
    extra = sorted(k for k in tensors if "::" in k and k not in expected)
    _expect(not extra, f"{name}: stored tensors not in the layout: {', '.join(extra[:5])}.")
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    for weight, entry in layout.items():  # names and shapes checked before anything is decoded or allocated
        _expect(weight in shapes, f"{name}: weight {weight!r} is not in the {type(model).__name__} it describes.")
        _expect(isinstance(entry, dict) and entry.get("shape") == shapes[weight],
                f"{name}: weight {weight!r} has shape {str(entry.get('shape') if isinstance(entry, dict) else entry)[:80]}, "
                f"the model's is {shapes[weight]}.")
    for weight, entry in layout.items():
        try:
            state[weight] = _decode_weight(weight, entry, tensors)
        except CheckpointError as exc:
            raise CheckpointError(f"{name}: weight {weight!r}: {exc}") from None
        except (TypeError, ValueError, IndexError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{name}: weight {weight!r} does not match its layout ({first}).") from None
    return load_into(model, state, name).eval()
