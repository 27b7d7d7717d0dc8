"""Home's upload: a checkpoint of the selected architecture replaces this session's model.

A file whose weights hold exact zeros (the app's own sparse checkpoint, or any pruned
state dict) is a pruned model: its masks come from the stored zeros, so the app shows
it as pruned as it is.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from sparsity_viz.checkpoints import CheckpointError, load_checkpoint_bytes
from sparsity_viz.models import describe_architecture
from sparsity_viz.session import workbench_from_upload

from . import keys
from .evaluation import accuracy
from .settings import reset_prune_slider
from .workbench import bench, selected_model, set_bench


def load_upload(data: bytes, filename: str) -> tuple[str, str]:
    """Replace this session's model with an uploaded checkpoint of the selected architecture.

    Returns ``(level, message)``; never raises for a bad file (corrupt, wrong
    architecture, a pickle that tries to run code: all are ``CheckpointError``).
    """
    name = selected_model()
    try:
        model = load_checkpoint_bytes(data, name, filename)
    except CheckpointError as exc:
        result = ("error", f"Could not load {filename}: {exc} The app keeps using the previous model.")
    except Exception as exc:  # noqa: BLE001 - anything else the parser throws: still a message, not a traceback
        result = ("error", f"Could not load {filename}: {type(exc).__name__}: {str(exc)[:200]}")
    else:
        wb = workbench_from_upload(name, bench().dataset, model, filename)  # stored zeros become its masks
        set_bench(wb)
        reset_prune_slider()
        acc = accuracy(wb.current, wb)
        pruned = f", {100 * wb.sparsity:.1f} % of weights pruned (stored as zeros)" if wb.sparsity > 0 else ""
        result = ("success",
                  f"Loaded {filename}: {describe_architecture(model)}; test accuracy {100 * acc:.1f} %{pruned}.")
    st.session_state[keys.UPLOAD_MSG] = result
    return result


def upload_token(data: bytes, filename: str) -> tuple:
    """Which file this is (name, size, content hash) for which model."""
    return (filename, len(data), hashlib.sha1(data).hexdigest()[:12], selected_model())


def load_upload_once(data: bytes, filename: str) -> None:
    """``load_upload`` unless this very file was already loaded (the uploader keeps its file across reruns)."""
    token = upload_token(data, filename)
    if st.session_state.get(keys.UPLOAD_TOKEN) != token:
        load_upload(data, filename)
        st.session_state[keys.UPLOAD_TOKEN] = token


def upload_message() -> tuple[str, str] | None:
    return st.session_state.get(keys.UPLOAD_MSG)
