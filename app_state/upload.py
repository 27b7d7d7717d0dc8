"""Home's uploads: a checkpoint of the selected architecture, or your own model (spec + checkpoint + data).

A file whose weights hold exact zeros (the app's own sparse checkpoint, or any pruned
state dict) is a pruned model: its masks come from the stored zeros, so the app shows
it as pruned as it is.

Your own model: an architecture spec (JSON / YAML, ``sparsity_viz.arch_spec``), a checkpoint
checked against it, and optionally a dataset (CSV / NPZ, ``sparsity_viz.data_upload``) that
lives in this session only (``keys.OWN_DATASETS``). Nothing uploaded is executed. Any problem is
one message and the previous model stays.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from sparsity_viz.arch_spec import SpecError, bundled_datasets_for, load_spec_checkpoint, read_spec, spec_json
from sparsity_viz.checkpoints import CheckpointError, check_outputs_finite, load_checkpoint_bytes
from sparsity_viz.data_upload import DataError, fit_to_model, read_dataset
from sparsity_viz.models import describe_architecture
from sparsity_viz.session import own_card, own_model_name, workbench_from_upload

from . import keys
from .evaluation import accuracy
from .resources import dataset_named
from .settings import reset_prune_slider
from .workbench import bench, dataset, own_bench, selected_model, set_bench


def load_upload(data: bytes, filename: str) -> tuple[str, str]:
    """Replace this session's model with an uploaded checkpoint of the selected architecture.

    Returns ``(level, message)``; never raises for a bad file (corrupt, wrong
    architecture, a pickle that tries to run code: all are ``CheckpointError``).
    """
    name = selected_model()
    own = own_bench()
    try:
        if own is not None and own.name == name:  # your own model: the checkpoint is checked against its spec
            model = load_spec_checkpoint(own.card["spec"], data, filename)
        else:
            model = load_checkpoint_bytes(data, name, filename)
        check_outputs_finite(model, dataset().x_test, filename)
    except CheckpointError as exc:
        result = ("error", f"Could not load {filename}: {exc} The app keeps using the previous model.")
    except Exception as exc:  # noqa: BLE001 - anything else the parser throws: still a message, not a traceback
        result = ("error", f"Could not load {filename}: {type(exc).__name__}: {str(exc)[:200]}")
    else:
        card = {k: v for k, v in own.card.items() if k != "uploaded"} if own is not None and own.name == name else None
        wb = workbench_from_upload(name, bench().dataset, model, filename, card=card)  # stored zeros become its masks
        set_bench(wb)
        reset_prune_slider()
        acc = accuracy(wb.current, wb)
        pruned = f", {100 * wb.sparsity:.1f} % of weights pruned (stored as zeros)" if wb.sparsity > 0 else ""
        result = ("success",
                  f"Loaded {filename}: {describe_architecture(model)}; test accuracy {100 * acc:.1f} %{pruned}.")
    st.session_state[keys.UPLOAD_MSG] = result
    return result


def upload_token(data: bytes, filename: str) -> tuple:
    """Which file this is (name, size, content hash)."""
    return (filename, len(data), hashlib.sha1(data).hexdigest()[:12])


def load_upload_once(upload) -> None:
    """``load_upload`` when a file arrives in Home's checkpoint box (``upload``: the uploader's value, None when
    the box is empty).

    A file is loaded once, for the model selected when it arrived: the box keeps it across reruns and model
    changes, and it had been loaded again into every model picked next (a moons checkpoint gave circles 39 %, an
    audit). Emptying the box forgets it, so the same file put back loads again (it had been ignored).
    """
    if upload is None:
        st.session_state.pop(keys.UPLOAD_TOKEN, None)
        return
    data, filename = upload.getvalue(), upload.name
    token = upload_token(data, filename)
    if st.session_state.get(keys.UPLOAD_TOKEN) != token:
        load_upload(data, filename)
        st.session_state[keys.UPLOAD_TOKEN] = token


def upload_message() -> tuple[str, str] | None:
    return st.session_state.get(keys.UPLOAD_MSG)


def _file(key: str) -> tuple[bytes, str] | None:
    upload = st.session_state.get(key)
    return None if upload is None else (upload.getvalue(), upload.name)


def load_own_model() -> tuple[str, str]:
    """Build this session's own model from Home's three uploaders (a button callback, so it runs before the sidebar).

    The spec is validated, the checkpoint checked against it, the dataset (optional) validated and
    fitted to the model's input; without one, the model must fit a bundled dataset. On success the
    sidebar selects the new model; on any problem one error and the previous model stays.
    """
    spec_file, ckpt_file, data_file = (_file(k) for k in (keys.OWN_SPEC_FILE, keys.OWN_CKPT_FILE, keys.OWN_DATA_FILE))
    if spec_file is None or ckpt_file is None:
        result = ("error", "Upload both an architecture spec and a checkpoint first.")
        st.session_state[keys.OWN_MSG] = result
        return result
    try:
        spec = read_spec(*spec_file)
        model = load_spec_checkpoint(spec, *ckpt_file)
        datasets = bundled_datasets_for(spec)
        own_data = {}
        if data_file is not None:
            ds = fit_to_model(read_dataset(*data_file), spec.input_shape, spec.num_classes)
            own_data = {ds.name: ds}
            datasets = [ds.name, *datasets]
        elif not datasets:
            raise DataError(f"no bundled dataset has samples of shape {spec.input_shape} with {spec.num_classes} "
                            "classes: upload your dataset (CSV or NPZ) with the model.")
        test_set = own_data[datasets[0]] if datasets[0] in own_data else dataset_named(datasets[0])
        check_outputs_finite(model, test_set.x_test, ckpt_file[1])
    except (SpecError, CheckpointError, DataError) as exc:
        result = ("error", f"Could not load your model: {exc} The app keeps using the previous model.")
    except Exception as exc:  # noqa: BLE001 - anything else a parser throws: still a message, not a traceback
        result = ("error", f"Could not load your model: {type(exc).__name__}: {str(exc)[:200]}. "
                           "The app keeps using the previous model.")
    else:
        name = own_model_name(spec.name, spec_file[0], ckpt_file[0], data_file[0] if data_file else b"")
        wb = workbench_from_upload(name, datasets[0], model, ckpt_file[1], card=own_card(spec, datasets))
        st.session_state[keys.OWN_DATASETS] = own_data  # the previous upload's data goes with its model
        st.session_state[keys.OWN_BENCH] = wb
        st.session_state[keys.MODEL] = st.session_state[keys.STORED_MODEL] = name
        st.session_state[keys.DATASET] = datasets[0]
        set_bench(wb)
        reset_prune_slider()
        st.session_state.pop(keys.TRAIN_LOG, None)
        st.session_state.pop(keys.UPLOAD_MSG, None)
        acc = accuracy(wb.current, wb)
        pruned = f", {100 * wb.sparsity:.1f} % of weights stored as zeros (pruned)" if wb.sparsity > 0 else ""
        result = ("success", f"Loaded your model {name}: {spec.describe()}; test accuracy {100 * acc:.1f} % on "
                             f"{datasets[0]}{pruned}. Every page now works on it (sidebar: Sample model).")
    st.session_state[keys.OWN_MSG] = result
    return result


def own_message() -> tuple[str, str] | None:
    return st.session_state.get(keys.OWN_MSG)


def spec_template(name: str) -> str:
    """The architecture spec of bundled model ``name`` (``sample_models/<name>.spec.json``), as a starting point."""
    return spec_json(name)
