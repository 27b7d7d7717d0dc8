"""The app's state module: the ONLY place that touches ``st.session_state`` and ``st.cache_*``.

Data flows one way: pages -> this module -> the ``sparsity_viz`` library.

* Bundled models and datasets are cached once per process with
  ``st.cache_resource`` and are **read-only**: a session never gets the cached
  object, only a deep copy inside its own ``Workbench`` (see ``sparsity_viz.session``).
* Each session's ``Workbench`` holds its dense copy and the *current* model
  (dense copy + masks + origin). Prune, fine-tuning, Regularize and uploads
  replace the current model; Weights, Connections, Attribution, Curves and
  Export read it.
* Page settings that must survive page changes (widget state is dropped when a
  page is left) live in plain session keys (``STORED_*``) that no widget owns.
* The shareable part of the state (model, strategy, sparsity, lambda) is mirrored
  in the URL's query parameters.
"""

from __future__ import annotations

import copy
import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

from sparsity_viz import figures
from sparsity_viz.checkpoints import CheckpointError, available_samples, load_card, load_checkpoint_bytes, load_sample
from sparsity_viz.data import TOY_DATASETS, Dataset, load_dataset
from sparsity_viz.devices import DeviceUnavailableError, configure_threads, cuda_available, resolve_device
from sparsity_viz.masks import Masks, masked_copy
from sparsity_viz.models import describe_architecture, get_spec
from sparsity_viz.pruning import STRATEGIES, prune
from sparsity_viz.session import PruneConfig, Workbench, new_workbench, replace_current, reset
from sparsity_viz.training import EpochStats, TrainConfig, TrainingDiverged, evaluate_dataset, train

# ---------------------------------------------------------------------------
# Session keys (constants; nothing else spells them)

KEY_BENCH = "sv_bench"  # Workbench of this session
KEY_MODEL = "sv_model"  # sidebar selectbox: sample model name
STORED_MODEL = "sv_stored_model"  # the same, in a key no widget owns (survives page changes)
KEY_DATASET = "sv_dataset"  # sidebar selectbox: dataset
KEY_DEVICE = "sv_device"  # sidebar selectbox: device
KEY_URL_READ = "sv_url_read"  # the URL was read into the stored settings once
KEY_STOP = "sv_stop_requested"  # library-side stop flag of the next / running training
KEY_TRAIN_LOG = "sv_train_log"  # {page: {"history": [...], "message": str, "level": str}}
KEY_ACC_CACHE = "sv_acc_cache"  # {(id(model), dataset): (model, accuracy)}
KEY_CURVES = "sv_curves"  # config key of the last computed sweep
KEY_UPLOAD_MSG = "sv_upload_msg"  # (level, text) of the last upload
KEY_UPLOAD_TOKEN = "sv_upload_token"  # which uploaded file was loaded last
STORED_PRUNE = "sv_stored_prune"  # PruneConfig last chosen on the Prune page
STORED_REG = "sv_stored_reg"  # dict of the Regularize page settings
STORED_FINETUNE = "sv_stored_finetune"  # fine-tune epochs

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_MODEL = "lenet300"

# L1 defaults that actually make zeros within a short classroom run (measured:
# lenet300, SGD lr 0.05, lambda 3e-3, threshold 0.01, 10 epochs -> 95 % zeros at 94.9 %
# accuracy; the 2-D toys need a larger lambda because they have so few weights).
L1_DEFAULTS: dict[str, dict[str, float]] = {
    "lenet300": {"strength": 3e-3, "epochs": 5, "lr": 0.05, "zero_threshold": 0.01},
    "lenet5": {"strength": 3e-3, "epochs": 2, "lr": 0.05, "zero_threshold": 0.01},
    "digits_mlp": {"strength": 3e-2, "epochs": 10, "lr": 0.05, "zero_threshold": 0.01},
}
L1_TOY_DEFAULT = {"strength": 3e-2, "epochs": 20, "lr": 0.05, "zero_threshold": 0.01}
LAMBDAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
THRESHOLDS = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def init() -> None:
    """Once per rerun, before anything else: thread policy and the URL read once per session."""
    _configure_threads_once()
    if not st.session_state.get(KEY_URL_READ):
        _read_url()
        st.session_state[KEY_URL_READ] = True


@st.cache_resource(show_spinner=False)
def _configure_threads_once() -> int:
    return configure_threads()


# ---------------------------------------------------------------------------
# Shared, read-only caches


@st.cache_resource(show_spinner="Loading the model...")
def _bundled(name: str) -> tuple[torch.nn.Module, dict]:
    """The bundled checkpoint, shared by every session: NEVER modify it (sessions deep-copy)."""
    model, card = load_sample(name)
    for p in model.parameters():
        p.requires_grad_(False)  # a cheap tripwire: in-place training of the shared copy fails loudly
    return model, card


def shared_model(name: str) -> torch.nn.Module:
    """The cached shared model itself (read-only; for tests that check it stays dense)."""
    return _bundled(name)[0]


@st.cache_resource(show_spinner="Loading the data...")
def _dataset(name: str) -> Dataset:
    return load_dataset(name)


@st.cache_data(show_spinner=False)
def sample_card(name: str) -> dict:
    """The JSON card of a bundled model (plain data, safe to cache)."""
    return load_card(name)


def sample_names() -> list[str]:
    return available_samples()


def compatible_datasets(model_name: str) -> list[str]:
    """Datasets with the input shape the model was built for (all four toys are 2-D points)."""
    spec = get_spec(model_name)
    if spec.dataset in TOY_DATASETS:
        return [spec.dataset] + [d for d in TOY_DATASETS if d != spec.dataset]
    return [spec.dataset]


# ---------------------------------------------------------------------------
# URL (query parameters)


def _read_url() -> None:
    qp = st.query_params
    names = sample_names()
    model = qp.get("model")
    if model in names:
        st.session_state[KEY_MODEL] = st.session_state[STORED_MODEL] = model
    prune_cfg = PruneConfig()
    strategy = qp.get("strategy")
    if strategy in STRATEGIES:
        scopes = STRATEGIES[strategy].scopes
        prune_cfg = replace(prune_cfg, strategy=strategy, scope=prune_cfg.scope if prune_cfg.scope in scopes else scopes[0])
    scope = qp.get("scope")
    if scope in STRATEGIES[prune_cfg.strategy].scopes:
        prune_cfg = replace(prune_cfg, scope=scope)
    try:
        s = float(qp.get("sparsity", "nan"))
        if 0 <= s <= 100:
            prune_cfg = replace(prune_cfg, sparsity=round(s) / 100)
    except ValueError:
        pass
    if "strategy" in qp or "sparsity" in qp:
        st.session_state[STORED_PRUNE] = prune_cfg
    try:
        lam = float(qp.get("lam", "nan"))
        if lam == lam and lam >= 0:
            reg = dict(st.session_state.get(STORED_REG) or {})
            reg["strength"] = min(LAMBDAS, key=lambda v: abs(v - lam))
            st.session_state[STORED_REG] = reg
    except ValueError:
        pass


def set_url(**params: Any) -> None:
    """Mirror settings in the URL (only what changed, so reruns stay cheap)."""
    qp = st.query_params
    for k, v in params.items():
        text = f"{v:g}" if isinstance(v, float) else str(v)
        if qp.get(k) != text:
            qp[k] = text


def share_link() -> str:
    """The app URL with the current query parameters."""
    base = ""
    try:
        base = (st.context.url or "").split("?")[0]
    except Exception:  # no browser context (AppTest)
        base = ""
    query = "&".join(f"{k}={v}" for k, v in st.query_params.to_dict().items())
    return f"{base or 'http://localhost:8501/'}?{query}"


# ---------------------------------------------------------------------------
# The session's workbench


def selected_model() -> str:
    names = sample_names()
    name = st.session_state.get(KEY_MODEL) or st.session_state.get(STORED_MODEL)
    if name in names:
        return name
    return DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]


def device() -> str:
    """The device chosen in the sidebar, falling back to CPU with a message when missing."""
    choice = st.session_state.get(KEY_DEVICE, "auto")
    try:
        return str(resolve_device(choice))
    except DeviceUnavailableError:
        return "cpu"


def bench() -> Workbench:
    """This session's workbench, (re)built from a deep copy of the cached model when the model changes."""
    name = selected_model()
    wb: Workbench | None = st.session_state.get(KEY_BENCH)
    if wb is None or wb.name != name:
        shared, card = _bundled(name)
        wb = new_workbench(name, get_spec(name).dataset, shared, card=card)
        for p in wb.dense.parameters():
            p.requires_grad_(True)  # the session's own copy may be trained (on copies, by train())
        st.session_state[KEY_BENCH] = wb
        st.session_state.pop(KEY_TRAIN_LOG, None)
    ds_choice = st.session_state.get(KEY_DATASET)
    if ds_choice in compatible_datasets(name) and ds_choice != wb.dataset:
        wb = replace(wb, dataset=ds_choice)
        st.session_state[KEY_BENCH] = wb
    return wb


def set_bench(wb: Workbench) -> None:
    st.session_state[KEY_BENCH] = wb


def dataset(wb: Workbench | None = None) -> Dataset:
    wb = wb or bench()
    return _dataset(wb.dataset)


def accuracy(model: torch.nn.Module, wb: Workbench | None = None) -> float:
    """Test accuracy of ``model`` on the session's dataset (memoised per model object).

    Runs through the backend's compiled sparse model when its plan says that is faster
    (``eval_model``, end of this file); the predictions are the dense model's.
    """
    wb = wb or bench()
    cache: dict = st.session_state.setdefault(KEY_ACC_CACHE, {})
    key = (id(model), wb.dataset)
    hit = cache.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    acc = evaluate_dataset(eval_model(model), dataset(wb), device="cpu").accuracy
    if len(cache) > 16:
        cache.clear()
    cache[key] = (model, acc)
    return acc


def dense_accuracy(wb: Workbench | None = None) -> float:
    wb = wb or bench()
    return accuracy(wb.dense, wb)


def reset_bench() -> None:
    """Sidebar 'Reset': back to the dense model (the Prune slider goes back to 0 %)."""
    wb = st.session_state.get(KEY_BENCH)
    if wb is not None:
        st.session_state[KEY_BENCH] = reset(wb)
    st.session_state[STORED_PRUNE] = replace(stored_prune(), sparsity=0.0)
    st.session_state.pop("prune_sparsity", None)  # the slider widget re-reads the stored value
    st.session_state.pop(KEY_TRAIN_LOG, None)


def choose_model(name: str) -> None:
    """Select a sample model (a button callback; the sidebar selectbox follows)."""
    st.session_state[KEY_MODEL] = name
    _on_model_change()


def _on_model_change() -> None:
    name = st.session_state.get(KEY_MODEL)
    if name:
        st.session_state[STORED_MODEL] = name
        st.session_state[KEY_DATASET] = get_spec(name).dataset
        st.session_state.pop(KEY_UPLOAD_MSG, None)
        set_url(model=name)


# ---------------------------------------------------------------------------
# Sidebar workbench (drawn by app.py on every page)


def sidebar() -> Workbench:
    names = sample_names()
    # Re-assign the sidebar widgets' values every run: each page draws its own copy of
    # these widgets, and Streamlit would otherwise reset them on a page change.
    st.session_state[KEY_MODEL] = st.session_state[STORED_MODEL] = selected_model()
    for key, default in ((KEY_DATASET, None), (KEY_DEVICE, "auto")):
        value = st.session_state.get(key, default)
        if value is not None:
            st.session_state[key] = value
    with st.sidebar:
        st.header("Workbench")
        st.selectbox(
            "Sample model", names, key=KEY_MODEL, on_change=_on_model_change,
            format_func=lambda n: f"{n} · {get_spec(n).description}",
            help="Every page works on your own copy of this trained model.",
        )
        name = st.session_state[KEY_MODEL]
        options = compatible_datasets(name)
        if st.session_state.get(KEY_DATASET) not in options:
            st.session_state[KEY_DATASET] = options[0]
        st.selectbox("Dataset", options, key=KEY_DATASET, disabled=len(options) == 1,
                     help="The test split every accuracy is measured on. 2-D toy models can be tried on other toys.")
        st.selectbox("Device", DEVICES, key=KEY_DEVICE,
                     help="Where training and sweeps run. 'auto' picks a GPU when there is one.")
        if st.session_state.get(KEY_DEVICE) == "cuda" and not cuda_available():
            st.warning("No CUDA GPU on this machine: running on the CPU instead.")
        wb = bench()
        st.button("Reset to the dense model", key="sv_reset", on_click=reset_bench, width="stretch")
    # Streamlit drops query parameters on page changes: write the whole shareable state every run.
    cfg = stored_prune()
    set_url(model=wb.name, strategy=cfg.strategy, scope=cfg.scope, sparsity=int(round(100 * cfg.sparsity)),
            lam=float(stored_reg(wb.name)["strength"]))
    return wb


def sidebar_summary() -> None:
    """The current model in one caption, drawn after the page ran (so it shows the page's result)."""
    wb = st.session_state.get(KEY_BENCH)
    if wb is None:
        return
    acc = accuracy(wb.current, wb)
    st.sidebar.caption(
        f"**Current model:** {wb.origin}  \n"
        f"{100 * wb.sparsity:.1f} % of weights pruned · test accuracy {100 * acc:.1f} % "
        f"(dense {100 * dense_accuracy(wb):.1f} %) on {wb.dataset}"
    )


# ---------------------------------------------------------------------------
# Prune


def stored_prune() -> PruneConfig:
    cfg = st.session_state.get(STORED_PRUNE)
    return cfg if isinstance(cfg, PruneConfig) else PruneConfig()


def store_prune(cfg: PruneConfig) -> None:
    st.session_state[STORED_PRUNE] = cfg
    set_url(strategy=cfg.strategy, scope=cfg.scope, sparsity=int(round(100 * cfg.sparsity)))


@st.cache_data(max_entries=512, show_spinner="Pruning...")
def _prune_masks(fingerprint: str, strategy: str, scope: str, sparsity: float, seed: int, _model, _batch) -> Masks:
    """Masks for one prune setting of one dense model (keyed by its weights' fingerprint)."""
    return prune(_model, strategy, sparsity, scope=scope, seed=seed, batch=_batch).masks


def apply_prune(cfg: PruneConfig) -> Workbench:
    """Make the current model the dense copy pruned by ``cfg`` (unless it already is)."""
    wb = bench()
    store_prune(cfg)
    if wb.prune_config == cfg:
        return wb
    batch = None
    if STRATEGIES[cfg.strategy].needs_data:
        from sparsity_viz.experiments import data_batch

        batch = data_batch(dataset(wb), seed=cfg.seed)
    masks = _prune_masks(wb.fingerprint, cfg.strategy, cfg.scope, cfg.sparsity, cfg.seed, wb.dense, batch)
    model = masked_copy(wb.dense, masks)
    wb = replace_current(wb, model, masks, cfg.describe(), prune_config=cfg)
    set_bench(wb)
    return wb


# ---------------------------------------------------------------------------
# Live training (fine-tune on Prune, Regularize)


def training_log(page: str) -> dict | None:
    return (st.session_state.get(KEY_TRAIN_LOG) or {}).get(page)


def show_training_log(page: str) -> None:
    """The last run's charts and message (live placeholders vanish on the next rerun)."""
    log = training_log(page)
    if not log:
        return
    getattr(st, log["level"])(log["message"])
    if log["history"]:
        show_figure(figures.training_history(log["history"], log["title"]), f"{page}_training")


def request_stop() -> None:
    """Set the library-side stop flag: the next or running training stops at its next step."""
    st.session_state[KEY_STOP] = True


class _Interruptions:
    """Catches the rerun Streamlit delivers when the user clicks during a long run.

    Streamlit interrupts a running script at its next UI update or session-state
    read. Long runs (training, sweeps, lotteries) wrap those calls here, so a click
    (the Stop button included) ends the work at its next step with what it finished;
    ``resume()`` then lets the interruption continue as Streamlit intended.
    """

    def __init__(self):
        self.caught: list[RerunException | StopException] = []

    def ui(self, fn: Callable[[], None]) -> None:
        """Run one UI update unless the run is already interrupted."""
        if self.caught:
            return
        try:
            fn()
        except (RerunException, StopException) as exc:
            self.caught.append(exc)

    def stop(self) -> bool:
        """The library-side stop flag: a click happened, or a test set ``KEY_STOP``."""
        if self.caught:
            return True
        try:
            return bool(st.session_state.get(KEY_STOP))
        except (RerunException, StopException) as exc:
            self.caught.append(exc)
            return True

    def resume(self) -> None:
        """Re-raise the caught interruption (if any)."""
        if self.caught:
            raise self.caught[0]


def run_training(page: str, model: torch.nn.Module, config: TrainConfig, masks: Masks | None, origin: str,
                 prune_config: PruneConfig | None = None) -> None:
    """Train live: progress bar, charts updated every epoch, a Stop button; the result becomes current.

    Any interaction during the run (the Stop button included) makes Streamlit
    interrupt the script at its next UI update; that is caught here, the
    library's stop flag ends ``train`` at its next step, the partial result is
    kept, and the interruption continues. A diverging run ends in ``st.error``.
    """
    wb = bench()
    ds = dataset(wb)
    interruptions = _Interruptions()
    history: list[dict] = []
    title = f"Training: {origin}"
    st.button("Stop training", key=f"{page}_stop", help="Stops after the current step; what was trained so far is kept.")
    bar = st.progress(0.0, text="Starting...")
    chart = st.empty()
    last = [0.0]

    def on_progress(fraction: float) -> None:
        if fraction - last[0] >= 0.02 or fraction >= 1.0:
            last[0] = fraction
            interruptions.ui(lambda: bar.progress(fraction, text=f"Training... {100 * fraction:.0f} %"))

    def on_epoch(stats: EpochStats) -> None:
        history.append(asdict(stats))
        interruptions.ui(lambda: chart.plotly_chart(figures.training_history(history, title), key=None))

    start = time.perf_counter()
    level, result = "success", None
    try:
        result = train(model, ds, replace(config, device=device()), masks=masks, callback=on_epoch,
                       progress=on_progress, stop=interruptions.stop)
        done = len(result.history)
        if result.stopped:
            level = "warning"
            message = f"Stopped after {done} of {config.epochs} epochs; the model trained so far is now the current model."
        else:
            message = f"Finished {done} epochs in {time.perf_counter() - start:.1f} s."
    except TrainingDiverged as exc:
        level, message = "error", f"{exc} The current model was left unchanged."
    except (ValueError, DeviceUnavailableError) as exc:
        level, message = "error", f"Training could not start: {exc}"
    finally:
        st.session_state[KEY_STOP] = False
    if result is not None and result.history:
        final = result.model.to("cpu")
        wb = replace_current(bench(), final, {k: v.cpu() for k, v in (result.masks or {}).items()} or None,
                             origin + (" (stopped early)" if result.stopped else ""), prune_config=prune_config)
        set_bench(wb)
        h = result.history[-1]
        message += f" Test accuracy {100 * h.test_accuracy:.1f} %, {100 * h.sparsity:.1f} % of weights are exact zeros."
        if h.test_accuracy < 1.5 / ds.num_classes and level == "success":
            level = "warning"
            message += (" The accuracy fell to chance level: the learning rate or the penalty was too large "
                        "(every neuron died or every weight was zeroed). Press Reset or train again with smaller values.")
    elif result is not None and level != "error":
        level, message = "warning", "Stopped before the first epoch finished; the current model was left unchanged."
    logs = dict(st.session_state.get(KEY_TRAIN_LOG) or {})
    logs[page] = {"history": history, "message": message, "level": level, "title": title}
    st.session_state[KEY_TRAIN_LOG] = logs
    interruptions.resume()
    st.rerun()  # redraw the page around the new current model; the log above keeps the charts


def stored_reg(model_name: str) -> dict:
    defaults = {"regularizer": "l1", **L1_DEFAULTS.get(model_name, L1_TOY_DEFAULT), "start": "dense"}
    return {**defaults, **(st.session_state.get(STORED_REG) or {})}


def store_reg(settings: dict) -> None:
    st.session_state[STORED_REG] = dict(settings)
    set_url(lam=float(settings["strength"]))


def stored_finetune() -> int:
    return int(st.session_state.get(STORED_FINETUNE, 2))


def store_finetune(epochs: int) -> None:
    st.session_state[STORED_FINETUNE] = int(epochs)


# ---------------------------------------------------------------------------
# Upload


def load_upload(data: bytes, filename: str) -> tuple[str, str]:
    """Replace this session's dense model with an uploaded checkpoint of the selected architecture.

    Returns ``(level, message)``; never raises for a bad file (corrupt, wrong
    architecture, a pickle that tries to run code: all are ``CheckpointError``).
    """
    name = selected_model()
    try:
        model = load_checkpoint_bytes(data, name, filename)
    except CheckpointError as exc:
        result = ("error", f"Could not load {filename}: {exc} The app keeps using the previous model.")
    except Exception as exc:  # anything else the parser throws: still a message, not a traceback
        result = ("error", f"Could not load {filename}: {type(exc).__name__}: {str(exc)[:200]}")
    else:
        wb = bench()
        wb = new_workbench(name, wb.dataset, model, origin=f"dense (uploaded {filename})", card={"uploaded": filename})
        set_bench(wb)
        st.session_state[STORED_PRUNE] = replace(stored_prune(), sparsity=0.0)
        st.session_state.pop("prune_sparsity", None)
        acc = accuracy(wb.dense, wb)
        result = ("success", f"Loaded {filename}: {describe_architecture(model)}; test accuracy {100 * acc:.1f} %.")
    st.session_state[KEY_UPLOAD_MSG] = result
    return result


def load_upload_once(data: bytes, filename: str) -> None:
    """``load_upload`` unless this very file was already loaded (the uploader keeps its file across reruns)."""
    token = (filename, len(data), hash_bytes(data), selected_model())
    if st.session_state.get(KEY_UPLOAD_TOKEN) != token:
        load_upload(data, filename)
        st.session_state[KEY_UPLOAD_TOKEN] = token


def upload_message() -> tuple[str, str] | None:
    return st.session_state.get(KEY_UPLOAD_MSG)


# ---------------------------------------------------------------------------
# Curves (sweeps), cached per configuration


@st.cache_resource(show_spinner=False)
def _curve_store() -> dict:
    """Sweep results per configuration, shared by sessions (DataFrames handed out as copies)."""
    return {}


def curves_key(config: Any) -> tuple:
    wb = bench()
    return (wb.fingerprint, wb.dataset, config)


def cached_curves(config: Any) -> pd.DataFrame | None:
    hit = _curve_store().get(curves_key(config))
    return None if hit is None else hit.copy()


def compute_curves(config: Any, run: Callable[[Callable[[float, dict], None]], pd.DataFrame]) -> pd.DataFrame:
    """Run a sweep with a progress bar (``run(progress)``), cache and return it."""
    bar = st.progress(0.0, text="Computing the curves...")

    def progress(fraction: float, row: dict) -> None:
        bar.progress(fraction, text=f"{100 * fraction:.0f} % · {row['strategy']} at {100 * row['sparsity']:.0f} %")

    frame = run(progress)
    bar.empty()
    if not frame.attrs.get("cancelled"):
        store = _curve_store()
        if len(store) > 64:
            store.clear()
        store[curves_key(config)] = frame
    st.session_state[KEY_CURVES] = config
    return frame.copy()


def last_curves_config() -> Any:
    return st.session_state.get(KEY_CURVES)


# ---------------------------------------------------------------------------
# Figures, tables and downloads


@st.cache_data(max_entries=64, show_spinner=False)
def _png(figure_json: str, width: int, height: int) -> bytes:
    """PNG bytes through kaleido (Debian's chromium), cached by the figure's JSON."""
    import plotly.io as pio

    fig = pio.from_json(figure_json)
    return figures.to_png_bytes(fig, width=width, height=height)


def show_figure(fig: go.Figure, name: str, *, png: bool = True, height: int | None = None) -> None:
    """Draw a figure; under it, an on-demand PNG export (kaleido runs only when asked)."""
    # theme=None keeps the figure's own classroom style (big fonts, colour-blind-safe scales)
    st.plotly_chart(fig, key=f"fig_{name}", theme=None, config={"displaylogo": False})
    if not png:
        return
    png_key = f"png_{name}"
    if st.button("Prepare PNG", key=png_key, type="tertiary", icon=":material/image:",
                 help="Renders this figure as a PNG through kaleido (a few seconds), then offers the download."):
        try:
            h = height or int(fig.layout.height or 600)
            data = _png(fig.to_json(), 1200, h)
        except Exception as exc:  # no chromium, kaleido failure: say so, keep the page
            st.error(f"PNG export failed: {type(exc).__name__}: {str(exc)[:300]}")
        else:
            st.download_button("Download PNG", data, file_name=f"{name}.png", mime="image/png",
                               key=f"dl_{png_key}", on_click="ignore", icon=":material/download:")


def show_table(df: pd.DataFrame, name: str, *, column_config: dict | None = None, height: int | str = "auto") -> None:
    """A table with a CSV download beside it."""
    st.dataframe(df, hide_index=True, column_config=column_config, height=height)
    st.download_button("Download CSV", df.to_csv(index=False).encode(), file_name=f"{name}.csv", mime="text/csv",
                       key=f"csv_{name}", on_click="ignore", type="tertiary", icon=":material/download:")


def hash_bytes(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:12]


def torch_prune_bytes(wb: Workbench) -> bytes:
    """The current model in ``torch.nn.utils.prune`` form (``weight_orig`` + ``weight_mask``), as a .pt state dict."""
    from sparsity_viz.masks import to_torch_prune

    buf = io.BytesIO()
    torch.save(to_torch_prune(wb.current, wb.masks).state_dict(), buf)
    return buf.getvalue()


def clone(model: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(model)


# --- Sparse backend ---
# The current model runs through the backend's compiled sparse model wherever its plan
# says that is faster (same predictions as dense; tests/app/test_live_path.py checks),
# and the Speed & memory page's measurements are cached per model, masks and settings.

KEY_FAST = "sv_fast_models"  # {id(model): (model, compiled model or None)}
KEY_SPEED = "sv_speed"  # {speed_key(...): measured frames, plans and notices}
KEY_SPARSE_CKPT = "sv_sparse_ckpt"  # {id(model): (model, SparseSave, round-trip ok)}
EVAL_BATCH = 256  # evaluation batch the plan is made for (evaluate() uses 2048-sample chunks)


def fast_plan(model: torch.nn.Module) -> torch.nn.Module | None:
    """The compiled sparse model for evaluating ``model``, or None when dense is as fast.

    Uses the backend's ``policy="heuristic"`` plan (density thresholds measured by
    ``benchmarks/sparse_crossover.py``: native CSR from about 70 % sparsity at batch >= 16),
    so it costs a few ms and no timing runs. Only MLPs: the heuristic is calibrated on
    Linear layers (it would send LeNet-5's convs to im2col CSR, measured 2x slower).
    """
    from sparsity_viz.backend.dispatch import HEURISTIC_DENSITY
    from sparsity_viz.models import MLP, prunable_layers

    if not isinstance(model, MLP) or model.activation_name not in ("relu", "tanh"):
        return None
    if any(p.device.type != "cpu" for p in model.parameters()):
        return None
    layers = prunable_layers(model)
    limit = HEURISTIC_DENSITY["large"]
    if not layers or not any(float((m.weight != 0).float().mean()) <= limit for _, m in layers):
        return None  # nothing sparse enough: skip even the compile
    from sparsity_viz.backend import compile_model, kernels

    if not kernels.ready():  # never make a slider move wait for the first C++ build (~30 s)
        kernels.build_in_background()
        return None
    compiled = compile_model(model, batch_size=EVAL_BATCH, device="cpu", policy="heuristic")
    if all(p.format.startswith("dense") for p in compiled.plans):
        return None
    return compiled


def eval_model(model: torch.nn.Module) -> torch.nn.Module:
    """What to evaluate for ``model``: its compiled sparse model when faster, else itself (memoised per object)."""
    cache: dict = st.session_state.setdefault(KEY_FAST, {})
    hit = cache.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1] if hit[1] is not None else model
    try:
        compiled = fast_plan(model)
    except Exception:  # a backend failure must never cost the page: evaluate densely
        compiled = None
    if len(cache) > 8:
        cache.clear()
    cache[id(model)] = (model, compiled)
    return compiled if compiled is not None else model


def curves_evaluator() -> Callable[[torch.nn.Module], torch.nn.Module]:
    """For ``experiments.sweep(evaluator=...)``: each pruned point evaluated compiled when faster."""

    def evaluator(model: torch.nn.Module) -> torch.nn.Module:
        try:
            return fast_plan(model) or model
        except Exception:
            return model

    return evaluator


STORED_SPEED = "sv_stored_speed"  # Speed page settings (survive page changes, so cached results show again)
SPEED_DEFAULTS = {"batches": [1, 32, 256], "formats": ["dense", "csr-torch", "csr-native", "nm-native", "compact+dense",
                                                       "auto"], "repeats": 10}


def stored_speed() -> dict:
    return {**SPEED_DEFAULTS, **(st.session_state.get(STORED_SPEED) or {})}


def store_speed(**settings: Any) -> None:
    st.session_state[STORED_SPEED] = {**stored_speed(), **settings}


def speed_key(wb: Workbench, batches: tuple[int, ...], formats: tuple[str, ...], repeats: int, device: str,
              layer: str) -> tuple:
    """Cache key of one measurement: the current model's weights and masks, and every setting."""
    from sparsity_viz.session import fingerprint

    masks = hash_bytes(b"".join(m.numpy().tobytes() for m in wb.masks.values()))
    return (fingerprint(wb.current), masks, tuple(batches), tuple(formats), int(repeats), device, layer)


def speed_result(key: tuple) -> dict | None:
    return (st.session_state.get(KEY_SPEED) or {}).get(key)


CURVE_SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def measure_speed(key: tuple, wb: Workbench) -> dict:
    """Benchmark the current model per batch size, compile a measured plan per batch, and sweep one
    layer's speed-up vs sparsity, under a progress bar; cached under ``key`` for this session."""
    from sparsity_viz.backend import benchmark_model, compile_model, crossovers, speedup_curves

    _, _, batches, formats, repeats, dev, layer = key
    cuda = dev.startswith("cuda")
    model = clone(wb.current).eval()
    steps = 2 * len(batches) + len(CURVE_SPARSITIES)
    bar = st.progress(0.0, text="Measuring...")
    done = 0

    def tick(text: str) -> None:
        nonlocal done
        done += 1
        bar.progress(min(1.0, done / steps), text=f"{text} ({done}/{steps})")

    frames, plans = [], {}
    for b in batches:
        frames.append(benchmark_model(model, [b], device=dev, formats=formats, repeats=repeats))
        tick(f"Timed every format at batch {b}")
        compiled = compile_model(model, batch_size=b, device=dev, policy="measure")
        plans[b] = {"table": compiled.plan_table(), "explain": compiled.explain(), "notices": list(compiled.notices)}
        tick(f"Chose a format per layer for batch {b}")
    shape = tuple(dict(model.named_modules())[layer].weight.shape)
    curve_formats = ("dense-cuda", "csr-cuda") if cuda else ("dense", "csr-torch", "csr-native")
    curve_frames = []
    for s in CURVE_SPARSITIES:
        curve_frames.append(speedup_curves(shape, (s,), batches, formats=curve_formats, device=dev,
                                           repeats=max(3, repeats // 3)))
        tick(f"Random {shape[0]}x{shape[1]} layer at {100 * s:.0f} % sparsity")
    bar.empty()
    curves = pd.concat(curve_frames, ignore_index=True)
    result = {"bench": pd.concat(frames, ignore_index=True), "plans": plans, "curves": curves,
              "crossovers": crossovers(curves), "layer": layer, "shape": shape}
    store = dict(st.session_state.get(KEY_SPEED) or {})
    if len(store) > 8:
        store.clear()
    store[key] = result
    st.session_state[KEY_SPEED] = store
    return result


def sparse_checkpoint(wb: Workbench) -> tuple[Any, bool]:
    """The current model as a sparse safetensors checkpoint and whether it loads back bit-exact (memoised)."""
    from sparsity_viz.backend import load_sparse, save_sparse

    cache: dict = st.session_state.setdefault(KEY_SPARSE_CKPT, {})
    hit = cache.get(id(wb.current))
    if hit is not None and hit[0] is wb.current:
        return hit[1], hit[2]
    saved = save_sparse(wb.current, masks=wb.masks)
    loaded = load_sparse(saved.data).state_dict
    own = wb.current.state_dict()
    ok = set(loaded) == set(own) and all(_bit_equal(loaded[k], own[k]) for k in own)
    cache.clear()
    cache[id(wb.current)] = (wb.current, saved, ok)
    return saved, ok


def _bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bits (so -0.0 differs from +0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == torch.float32:
        return torch.equal(a.contiguous().view(torch.int32), b.detach().contiguous().view(torch.int32))
    return torch.equal(a, b.detach())


def backend_notices() -> list[tuple[str, str]]:
    """``(level, text)`` lines about this machine: CUDA paths skipped, native kernel fallback."""
    from sparsity_viz.backend import cuda_status, native_available, native_notice

    out = []
    ok, why = cuda_status()
    if not ok:
        out.append(("info", "The CUDA formats (cuSPARSE CSR and 2:4 semi-structured) need an NVIDIA GPU and were "
                            f"skipped on this machine. {why}"))
    if not native_available():
        out.append(("warning", native_notice() or "The native sparse kernel is unavailable: the pure-torch formats "
                                                  "are measured instead."))
    return out


# ---------------------------------------------------------------------------
# --- Strategy lab --- (pages 9_compare, 10_survival, 11_lottery)
#
# Results live in this session, keyed by (dense fingerprint, dataset, frozen config):
# moving a widget back to an earlier setting shows the earlier result at once. Long
# runs draw a progress bar and a Stop button; stopping (or any click) keeps what was
# finished (the library functions take ``stop=`` and return partial results).

from dataclasses import dataclass  # noqa: E402  (kept with the section it serves)

KEY_LAB = "sv_lab_results"  # {(fingerprint, dataset, config): result}
LAB_MAX_ENTRIES = 24


@dataclass(frozen=True)
class CompareConfig:
    """The Compare page's sweep: strategies x levels x seeds, optionally also fine-tuned."""

    strategies: tuple[str, ...]
    levels: tuple[float, ...]
    seeds: int = 1
    finetune_epochs: int = 0  # > 0: the one-shot curves AND the fine-tuned ones
    random_baseline: bool = True


@dataclass(frozen=True)
class ProfileConfig:
    """Per-layer sparsity profile of each strategy at one sparsity."""

    strategies: tuple[str, ...]
    sparsity: float


@dataclass(frozen=True)
class SurvivalConfig:
    """Two (strategy, seed) pairs pruned to one sparsity."""

    a: tuple[str, int]
    b: tuple[str, int]
    sparsity: float


@dataclass(frozen=True)
class ScheduleConfig:
    """One schedule-driven run (gradual / iterative / set / rigl) from the dense model."""

    strategy: str
    sparsity: float
    epochs: int
    lr: float


def _lab_store() -> dict:
    return st.session_state.setdefault(KEY_LAB, {})


def _lab_key(config: Any) -> tuple:
    wb = bench()
    return (wb.fingerprint, wb.dataset, config)


def lab_result(config: Any) -> Any | None:
    """The stored result of ``config`` for the current dense model (``None`` when not run yet)."""
    return _lab_store().get(_lab_key(config))


def _lab_keep(config: Any, result: Any) -> None:
    store = _lab_store()
    if len(store) >= LAB_MAX_ENTRIES:
        store.pop(next(iter(store)))
    store[_lab_key(config)] = result


def lab_quick(config: Any, work: Callable[[], Any], text: str = "Computing...") -> Any:
    """A short computation (under a spinner), stored per configuration in this session."""
    hit = lab_result(config)
    if hit is None:
        with st.spinner(text):
            hit = work()
        _lab_keep(config, hit)
    return hit


def lab_batch(seed: int = 0):
    """The data batch that data-driven strategies (SNIP, GraSP, ...) score on."""
    from sparsity_viz.experiments import data_batch

    return data_batch(dataset(), seed=seed)


def run_lab(config: Any, work: Callable[[Callable[[float, str], None], Callable[[], bool]], Any], *,
            key: str, text: str = "Working...") -> Any:
    """Run ``work(progress, stop)`` with a progress bar and a Stop button, store its result, rerun the page.

    ``progress(fraction, text)`` updates the bar; ``stop()`` turns True when the user
    clicks anything (Streamlit interrupts the script at its next UI update: that is
    caught here, the work ends at its next check and keeps what it finished) or
    when ``KEY_STOP`` is set (tests). A partial result is stored too (``cancelled``
    tells the page); the interruption then continues as Streamlit intended. Never
    returns: the page is rerun and finds the result with ``lab_result``.
    """
    interruptions = _Interruptions()
    st.button("Stop", key=f"{key}_stop", icon=":material/stop:", help="Stops after the current step; finished work is kept.")
    bar = st.progress(0.0, text=text)
    last = [-1.0]

    def progress(fraction: float, label: str = "") -> None:
        if fraction - last[0] < 0.01 and fraction < 1.0:
            return
        last[0] = fraction
        interruptions.ui(lambda: bar.progress(min(1.0, max(0.0, fraction)),
                                              text=f"{100 * fraction:.0f} % · {label}" if label else text))

    try:
        result = work(progress, interruptions.stop)
    finally:
        st.session_state[KEY_STOP] = False
    _lab_keep(config, result)
    interruptions.resume()
    st.rerun()  # redraw the page from the stored result (no stale bar, Stop or Compute button)


def compare_sweep_run(config: CompareConfig) -> pd.DataFrame:
    """Run the Compare page's sweep (one-shot, and fine-tuned when asked) with progress and Stop."""
    from sparsity_viz.experiments import sweep

    wb = bench()
    ds = dataset(wb)
    recipe = wb.card.get("recipe", {}) if isinstance(wb.card, dict) else {}
    ft = TrainConfig(epochs=config.finetune_epochs, lr=float(recipe.get("lr", 1e-3)) / 10) if config.finetune_epochs else None

    def work(progress, stop):
        parts = []
        runs = [None, ft] if ft is not None else [None]
        for i, finetune in enumerate(runs):
            def on_point(fraction, row, i=i):
                tag = " fine-tuned" if row.get("finetune_epochs") else ""
                progress((i + fraction) / len(runs), f"{row['strategy']}{tag} at {100 * row['sparsity']:g} %")

            part = sweep(wb.dense, ds, list(config.strategies), list(config.levels), range(config.seeds),
                         finetune=finetune, baselines=config.random_baseline, progress=on_point, stop=stop,
                         device="cpu")
            part["finetuned"] = finetune is not None
            parts.append(part)
            if part.attrs.get("cancelled"):
                break
        frame = pd.concat(parts, ignore_index=True)
        frame.attrs["dense_accuracy"] = parts[0].attrs.get("dense_accuracy")
        frame.attrs["cancelled"] = any(p.attrs.get("cancelled") for p in parts)
        return frame

    return run_lab(config, work, key="compare", text="Pruning and measuring...")


def schedule_run(config: ScheduleConfig):
    """Train with a schedule-driven strategy from the dense model; returns its ``ScheduleResult``."""
    from sparsity_viz.pruning import get_strategy

    wb = bench()
    ds = dataset(wb)
    tc = TrainConfig(epochs=config.epochs, lr=config.lr, device="cpu")

    def work(progress, stop):
        return get_strategy(config.strategy).run(wb.dense, ds, config.sparsity, tc,
                                                 progress=lambda f: progress(f, "training while pruning"), stop=stop)

    return run_lab(config, work, key="survival_schedule", text="Training while pruning...")


def lottery_run(model_name: str, init_seed: int, config: Any) -> pd.DataFrame:
    """IMP with rewinding from a fresh initialisation of ``model_name`` against its controls."""
    from sparsity_viz.lottery import lottery_experiment
    from sparsity_viz.models import build_model

    ds = dataset()

    def work(progress, stop):
        return lottery_experiment(build_model(model_name, init_seed), ds, config,
                                  progress=lambda f: progress(f, "train, prune 20 %, rewind, retrain"), stop=stop)

    return run_lab((model_name, init_seed, config), work, key="lottery", text="Running the lottery experiment...")
