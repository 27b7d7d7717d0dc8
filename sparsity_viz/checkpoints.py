"""Safe checkpoints: safetensors + a JSON model card; never unpickles arbitrary objects.

A bundled model is two files in ``sample_models/``: ``<name>.safetensors`` (the
state dict) and ``<name>.json`` (the card: architecture and its arguments,
dataset, test accuracy, training recipe, seed, torch version). User uploads may
also be ``.pt`` state dicts, read with ``torch.load(weights_only=True)``, which
refuses any pickled object that is not a tensor or plain container (the
``torch.nn.utils.prune`` form, ``weight_orig`` + ``weight_mask``, is folded back
into ``weight``, in a ``.safetensors`` too), or the app's own sparse checkpoints (``backend.save_sparse``,
recognised by their metadata), which load as the dense state dict they encode.

Values policy: a checkpoint whose weights hold NaN or infinity, or finite values
that overflow the model's dtype when converted (a float64 1e300 into float32), is
refused with one ``CheckpointError`` naming every such tensor; nothing is clipped.
Values too small for the dtype become zero, as any float conversion does.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from . import bounded_json
from .atomic_write import write_atomically
from .model_card import card_problems
from .models import build_from_metadata, count_parameters, get_spec

SAMPLE_DIR = Path(os.environ.get("SPARSITY_VIZ_SAMPLES", Path(__file__).resolve().parent.parent / "sample_models"))
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024
MAX_CARD_BYTES = 1024 * 1024  # a model card is a few KB of JSON
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64,  # what a real weight loads from
                 torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)


class CheckpointError(ValueError):
    """A checkpoint could not be read or does not fit the architecture; the message says why."""


def state_dict_to_bytes(model: nn.Module, metadata: dict[str, str] | None = None) -> bytes:
    """Serialise a model's state dict as safetensors bytes."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return st_save(tensors, metadata=metadata)


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def read_safetensors(data: bytes, filename: str = "checkpoint.safetensors") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the ``__metadata__`` of safetensors bytes.

    Raises:
        CheckpointError: empty or not a valid safetensors file (one line saying why).
    """
    if not data:
        raise CheckpointError(f"{filename}: the file is empty.")
    try:
        tensors = dict(st_load(bytes(data)))
    except (SafetensorError, Exception) as exc:  # the Rust parser's error, or anything it lets through
        raise CheckpointError(f"{filename}: not a valid safetensors file ({_one_line(exc)}).") from None
    header_len = int.from_bytes(data[:8], "little")  # the parser has checked the header already
    try:
        header = bounded_json.loads(bytes(data[8 : 8 + header_len]))
        metadata = header.get("__metadata__") or {}
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f"{filename}: unreadable safetensors header ({_one_line(exc)}).") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{filename}: the safetensors metadata is not a mapping.")
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def read_state_dict(data: bytes, filename: str = "checkpoint.safetensors") -> dict[str, torch.Tensor]:
    """Parse checkpoint bytes into tensors: safetensors, or a ``.pt`` state dict loaded weights-only.

    A sparse checkpoint written by ``backend.save_sparse`` (its metadata says so)
    is decoded to the dense state dict it stores, pruned entries exactly zero.

    Raises:
        CheckpointError: empty, too large, corrupt, not a state dict, or a pickle
            that tries to build anything but tensors.
    """
    if not data:
        raise CheckpointError(f"{filename}: the file is empty.")
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{filename}: {len(data) / 2**20:.1f} MiB is larger than the {MAX_CHECKPOINT_BYTES // 2**20} MiB limit.")
    suffix = Path(filename).suffix.lower()
    if suffix in (".pt", ".pth", ".bin"):
        _check_unpacked_size(data, filename)
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, zip errors...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "Weights only load failed" in first:  # torch goes on to suggest weights_only=False: not to a student
                first = "it holds Python objects besides tensors, and this app never runs a pickle"
            raise CheckpointError(
                f"{filename}: not a weights-only PyTorch state dict (refused or corrupt: {first[:200]})."
            ) from None
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(f"{filename}: expected a dict of tensors (a state dict), got {type(obj).__name__}.")
        state = {str(k): v for k, v in obj.items()}
        _check_plain_tensors(state, filename)
        return fold_torch_prune(state)
    tensors, metadata = read_safetensors(data, filename)
    from .backend import sparse_checkpoint  # only when needed: the backend package is heavier

    if sparse_checkpoint.is_sparse_metadata(metadata):
        # decoded, a checkpoint's weights get the same bound as a .pt's unpacked ones: a 14 KB file declaring a
        # 14000x14000 weight was decoded (1 GiB) before its shape met the model's (an audit)
        return sparse_checkpoint.decode_sparse(tensors, metadata, filename, MAX_CHECKPOINT_BYTES)[0]
    return fold_torch_prune(tensors)  # a torch-pruned model saved with safetensors has the same pairs (an audit)


def _check_unpacked_size(data: bytes, filename: str) -> None:
    """Refuse a ``.pt`` zip whose members unpack past ``MAX_CHECKPOINT_BYTES``, before ``torch.load`` inflates them.

    ``torch.save`` stores its members uncompressed, but a zip may deflate them: a 262 KB file unpacked to a
    256 MiB tensor (about 1,000x; an audit), so the file's own size bounds nothing. Legacy (non-zip) files are
    not compressed.
    """
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{filename}: a corrupt zip archive ({_one_line(exc)}).") from None
    if unpacked > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{filename}: unpacks to {unpacked / 2**20:,.1f} MiB, larger than the "
                              f"{MAX_CHECKPOINT_BYTES // 2**20} MiB limit.")


def _check_plain_tensors(state: dict[str, torch.Tensor], filename: str) -> None:
    """Refuse what a weights-only ``.pt`` can still hold besides plain tensors within the size limit.

    A sparse or meta tensor reached the app's catch-all as a torch error ("Could not run 'aten::ne.Scalar'"); a
    1.9 KB file of two ``expand``-ed views stood for 40000x40000 weights, which folding a torch-prune pair then
    materialised (6.4 GB before the shape check; an audit): the limit counts elements, not stored bytes.
    """
    odd = [f"{k} ({v.layout}, {v.device})" for k, v in state.items() if v.layout != torch.strided or v.device.type != "cpu"]
    if odd:
        raise CheckpointError(f"{filename}: a state dict holds plain dense CPU tensors, not {', '.join(odd[:5])}.")
    elements = sum(v.numel() * v.element_size() for v in state.values())
    if elements > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{filename}: its tensors stand for {elements / 2**20:,.0f} MiB of values, more than the "
                              f"{MAX_CHECKPOINT_BYTES // 2**20} MiB limit (a small file can hold views that repeat "
                              "a few stored values).")


def fold_torch_prune(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``<p>_orig`` and ``<p>_mask`` pairs (``torch.nn.utils.prune`` form) folded into ``<p> = orig * mask``.

    This is how the app's "prune-ready" export loads back as the pruned model;
    other keys pass through unchanged.
    """
    out = dict(state)
    for key in [k for k in state if k.endswith("_orig")]:
        base = key[: -len("_orig")]
        mask = state.get(base + "_mask")
        if mask is None or base in state or mask.shape != state[key].shape:
            continue  # not a pair: left for check_fits to name
        if not bool(((mask == 0) | (mask == 1)).all()):  # a mask of 7.0 would scale the weight
            raise CheckpointError(f"{base}_mask holds values other than 0 and 1; a torch.nn.utils.prune mask keeps "
                                  "(1) or prunes (0).")
        orig = out.pop(key)
        out[base] = orig * out.pop(base + "_mask").to(orig.dtype)
    return out


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise one ``CheckpointError`` naming every key or shape mismatch.

    Then one naming every tensor with NaN / infinite values, or with finite values
    that would overflow the model's dtype (float64 above float32's 3.4e38).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
    if wrong:
        problems.append("shape mismatch " + "; ".join(wrong))
    kinds = [f"{k} ({str(state[k].dtype).removeprefix('torch.')})" for k, v in expected.items()
             if k in state and v.is_floating_point() and state[k].dtype not in WEIGHT_DTYPES]
    if kinds:  # a complex value would lose its imaginary part on loading, a bool is no weight at all, and float8
        more = " ..." if len(kinds) > 8 else ""  # has no isfinite in torch (an audit)
        problems.append(f"complex, bool or other values where the model has real weights (it takes "
                        f"{', '.join(str(d).removeprefix('torch.') for d in WEIGHT_DTYPES)}): "
                        f"{', '.join(kinds[:8])}{more}")
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + " | ".join(problems) + ".")
    problems = []
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        counts = ", ".join(f"{k} ({int((~torch.isfinite(state[k])).sum())})" for k in bad)
        problems.append(f"{source} has NaN or infinite weights in {counts}.")
    overflow = _overflowing(state, {k: v.dtype for k, v in expected.items()}, skip=set(bad))
    if overflow:
        dtypes = sorted({str(expected[k].dtype).removeprefix("torch.") for k in overflow})
        details = ", ".join(f"{k} ({n} value{'s' if n > 1 else ''}, largest |x| {big:.3g})" for k, (n, big) in overflow.items())
        problems.append(
            f"{source}: values overflow {'/'.join(dtypes)} (the model's dtype) in {details}; "
            "they would load as infinity. Rescale or clip them before saving."
        )
    if problems:
        raise CheckpointError(" ".join(problems))


def _overflowing(
    state: dict[str, torch.Tensor], dtypes: dict[str, torch.dtype], skip: set[str]
) -> dict[str, tuple[int, float]]:
    """``{key: (count, largest magnitude)}`` of finite values that become infinite in the model's dtype."""
    out = {}
    for k, v in state.items():
        target = dtypes.get(k)
        if k in skip or target is None or not (v.is_floating_point() and target.is_floating_point) or v.dtype == target:
            continue
        lost = ~torch.isfinite(v.to(target))  # v itself is finite here
        if lost.any():
            out[k] = (int(lost.sum()), float(v[lost].abs().max()))
    return out


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> nn.Module:
    """Check ``state`` against ``model`` and load it (converting dtypes to the model's)."""
    check_fits(model, state, source)
    expected = model.state_dict()
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model


def read_checkpoint_file(path: str | Path) -> bytes:
    """The bytes of a checkpoint file, checked first: a regular file of at most ``MAX_CHECKPOINT_BYTES``.

    ``CheckpointError`` otherwise, before reading anything: ``/dev/zero``, a FIFO or a symlink to one would
    otherwise be read until memory runs out (or forever).
    """
    path = Path(path)
    try:
        info = path.stat()  # follows symlinks: what would be read
    except OSError as exc:
        raise CheckpointError(f"{path.name}: cannot read it ({exc.strerror or type(exc).__name__}).") from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path.name}: not a regular file (a device, a pipe or a directory).")
    limit = MAX_CHECKPOINT_BYTES
    if info.st_size > limit:
        raise CheckpointError(f"{path.name}: {info.st_size / 2**20:.1f} MiB is larger than the {limit // 2**20} MiB limit.")
    with path.open("rb") as f:
        data = f.read(limit + 1)  # a file that grew since the stat is still cut at the limit
    if len(data) > limit:
        raise CheckpointError(f"{path.name}: larger than the {limit // 2**20} MiB limit.")
    return data


def check_outputs_finite(model: nn.Module, inputs: torch.Tensor, source: str = "checkpoint",
                         limit: int = 512) -> None:
    """``CheckpointError`` when ``model`` gives an infinite or NaN output on ``inputs`` (its first ``limit`` samples).

    ``check_fits`` refuses weights that are not finite; this catches finite weights so large that the model
    overflows in use (every weight 3e38: all logits inf, every accuracy meaningless).
    """
    x = inputs[:limit].float()
    with torch.no_grad():
        out = model(x)  # (n, classes)
    broken = int((~torch.isfinite(out)).flatten(1).any(dim=1).sum())
    if broken:
        largest = max((float(p.detach().abs().max()) for p in model.parameters() if p.numel()), default=0.0)
        raise CheckpointError(
            f"{source}: the model's outputs overflow (inf or NaN) on {broken} of {len(x)} test samples; "
            f"its largest weight is {largest:.3g}. Rescale the weights before saving."
        )


def load_checkpoint_bytes(data: bytes, model_name: str, filename: str = "upload.safetensors") -> nn.Module:
    """A fresh model of the bundled architecture ``model_name`` with weights from ``data``."""
    model = get_spec(model_name).build()
    return load_into(model, read_state_dict(data, filename), filename).eval()


def save_model(model: nn.Module, path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and, when a card is given, its ``.json`` beside it."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, state_dict_to_bytes(model))
    if card is not None:
        write_atomically(path.with_suffix(".json"), json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def load_card(name: str, directory: str | Path | None = None) -> dict[str, Any]:
    """The JSON card of a bundled sample model."""
    directory = Path(directory or SAMPLE_DIR)
    path = directory / f"{name}.json"
    if not path.exists():
        raise CheckpointError(
            f"No sample model {name!r} in {directory}; run `python -m sparsity_viz train-samples` to create it."
        )
    if not path.is_file() or path.stat().st_size > MAX_CARD_BYTES:  # a card linked to /dev/zero was read until OOM
        raise CheckpointError(f"{path.name}: not a model card (a regular JSON file of at most "
                              f"{MAX_CARD_BYTES // 2**20} MiB).")
    try:
        card = bounded_json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: not a readable model card ({_one_line(exc)}).") from None
    problems = card_problems(card)
    if problems:
        raise CheckpointError(f"{path.name}: not a usable model card: {'; '.join(problems[:3])}"
                              + (f" (and {len(problems) - 3} more)." if len(problems) > 3 else "."))
    return card


def load_sample(name: str, directory: str | Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load a bundled sample model (eval mode) and its card, without unpickling anything."""
    directory = Path(directory or SAMPLE_DIR)
    card = load_card(name, directory)
    arch = card.get("architecture") if isinstance(card, dict) else None
    try:
        model = build_from_metadata(arch["kind"], arch["kwargs"])
    except (TypeError, ValueError, KeyError) as exc:  # a hostile or stale card: unknown kind, bad or
        # impossible sizes (a negative width, 10**12 parameters: refused before anything is allocated)
        raise CheckpointError(f"{name}.json: cannot build its architecture {arch!r} ({_one_line(exc)}).") from None
    path = directory / f"{name}.safetensors"
    state = read_state_dict(read_checkpoint_file(path), path.name)
    load_into(model, state, path.name)
    return model.eval(), card


def available_samples(directory: str | Path | None = None) -> list[str]:
    """Names of bundled models whose checkpoint and card both exist, in registry order."""
    from .models import MODELS

    directory = Path(directory or SAMPLE_DIR)
    return [n for n in MODELS if (directory / f"{n}.json").exists() and (directory / f"{n}.safetensors").exists()]


def available_moe_samples(directory: str | Path | None = None) -> list[str]:
    """Bundled mixture-of-experts models (``moe.MOE_ARCHITECTURES``) whose checkpoint and card both exist.

    Kept apart from ``available_samples``: MoE models are not chain models, so the pages
    and commands that take a ``MODELS`` name do not offer them.
    """
    from .moe.model import MOE_ARCHITECTURES

    directory = Path(directory or SAMPLE_DIR)
    return [n for n in MOE_ARCHITECTURES
            if (directory / f"{n}.json").exists() and (directory / f"{n}.safetensors").exists()]


def base_card(name: str, model: nn.Module) -> dict[str, Any]:
    """The architecture part of a card for registry model ``name``."""
    spec = get_spec(name)
    return {
        "name": name,
        "description": spec.description,
        "architecture": {"kind": spec.architecture, "kwargs": spec.kwargs},
        "dataset": {"name": spec.dataset},  # the shape every reader expects (samples add seed and sizes)
        "parameters": count_parameters(model),
        "torch_version": torch.__version__,
    }
