"""Safe checkpoints: safetensors + a JSON model card; never unpickles arbitrary objects.

A bundled model is two files in ``sample_models/``: ``<name>.safetensors`` (the
state dict) and ``<name>.json`` (the card: architecture and its arguments,
dataset, test accuracy, training recipe, seed, torch version). User uploads may
also be ``.pt`` state dicts, read with ``torch.load(weights_only=True)``, which
refuses any pickled object that is not a tensor or plain container.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .models import build_architecture, count_parameters, get_spec

SAMPLE_DIR = Path(os.environ.get("SPARSITY_VIZ_SAMPLES", Path(__file__).resolve().parent.parent / "sample_models"))
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint could not be read or does not fit the architecture; the message says why."""


def state_dict_to_bytes(model: nn.Module, metadata: dict[str, str] | None = None) -> bytes:
    """Serialise a model's state dict as safetensors bytes."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return st_save(tensors, metadata=metadata)


def read_state_dict(data: bytes, filename: str = "checkpoint.safetensors") -> dict[str, torch.Tensor]:
    """Parse checkpoint bytes into tensors: safetensors, or a ``.pt`` state dict loaded weights-only.

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
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, zip errors...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"{filename}: not a weights-only PyTorch state dict (refused or corrupt: {first[:200]})."
            ) from None
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(f"{filename}: expected a dict of tensors (a state dict), got {type(obj).__name__}.")
        return {str(k): v for k, v in obj.items()}
    try:
        return dict(st_load(data))
    except (SafetensorError, Exception) as exc:
        raise CheckpointError(f"{filename}: not a valid safetensors file ({str(exc)[:200]}).") from None


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise one ``CheckpointError`` naming every key or shape mismatch, and non-finite values."""
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
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + " | ".join(problems) + ".")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        counts = ", ".join(f"{k} ({int((~torch.isfinite(state[k])).sum())})" for k in bad)
        raise CheckpointError(f"{source} has NaN or infinite weights in {counts}.")


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> nn.Module:
    """Check ``state`` against ``model`` and load it (converting dtypes to the model's)."""
    check_fits(model, state, source)
    expected = model.state_dict()
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model


def load_checkpoint_bytes(data: bytes, model_name: str, filename: str = "upload.safetensors") -> nn.Module:
    """A fresh model of the bundled architecture ``model_name`` with weights from ``data``."""
    model = get_spec(model_name).build()
    return load_into(model, read_state_dict(data, filename), filename).eval()


def save_model(model: nn.Module, path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and, when a card is given, its ``.json`` beside it."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(state_dict_to_bytes(model))
    if card is not None:
        path.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def load_card(name: str, directory: str | Path | None = None) -> dict[str, Any]:
    """The JSON card of a bundled sample model."""
    directory = Path(directory or SAMPLE_DIR)
    path = directory / f"{name}.json"
    if not path.exists():
        raise CheckpointError(
            f"No sample model {name!r} in {directory}; run `python -m sparsity_viz train-samples` to create it."
        )
    return json.loads(path.read_text())


def load_sample(name: str, directory: str | Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load a bundled sample model (eval mode) and its card, without unpickling anything."""
    directory = Path(directory or SAMPLE_DIR)
    card = load_card(name, directory)
    arch = card["architecture"]
    model = build_architecture(arch["kind"], arch["kwargs"])
    path = directory / f"{name}.safetensors"
    state = read_state_dict(path.read_bytes(), path.name)
    load_into(model, state, path.name)
    return model.eval(), card


def available_samples(directory: str | Path | None = None) -> list[str]:
    """Names of bundled models whose checkpoint and card both exist, in registry order."""
    from .models import MODELS

    directory = Path(directory or SAMPLE_DIR)
    return [n for n in MODELS if (directory / f"{n}.json").exists() and (directory / f"{n}.safetensors").exists()]


def base_card(name: str, model: nn.Module) -> dict[str, Any]:
    """The architecture part of a card for registry model ``name``."""
    spec = get_spec(name)
    return {
        "name": name,
        "description": spec.description,
        "architecture": {"kind": spec.architecture, "kwargs": spec.kwargs},
        "dataset": spec.dataset,
        "parameters": count_parameters(model),
        "torch_version": torch.__version__,
    }
