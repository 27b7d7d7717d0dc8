"""Every ``st.session_state`` key of the app, defined once, with what it holds.

Plain keys (``STORED_*`` and the rest) are owned by no widget, so they survive page
changes (Streamlit drops a widget's state when its page is left). Widget keys that
the state layer reads or resets are here too; page-local widget keys stay in their
view. Families of per-name keys (a figure's PNG button, a table's CSV button) are
functions, so each is still spelled once.
"""

from __future__ import annotations

# --- the session's workbench and sidebar -------------------------------------------------
BENCH = "sv_bench"  # the Workbench of this session (dense copy, current model, masks, origin)
MODEL = "sv_model"  # sidebar selectbox: sample model name
STORED_MODEL = "sv_stored_model"  # the same, in a key no widget owns (survives page changes)
DATASET = "sv_dataset"  # sidebar selectbox: dataset
DEVICE = "sv_device"  # sidebar selectbox: device
RESET = "sv_reset"  # sidebar button: back to the dense model
URL_READ = "sv_url_read"  # True once the URL's query parameters were read into the stored settings
URL_PAGE_PARAMS = "sv_url_page_params"  # {page: {field: text}} a link's page settings not yet read by their page
LINK_MSG = "sv_link_msg"  # (level, text): what restoring a link's state said (shown once, in the sidebar)
PROJECTOR = "sv_projector"  # sidebar toggle: projector mode (larger fonts, thicker lines in every figure)
ACCURACY_AXIS = "sv_accuracy_axis"  # sidebar toggle: accuracy axes fixed to 0-100 % in every figure

# --- stored page settings (no widget owns them) -----------------------------------------
STORED_PRUNE = "sv_stored_prune"  # PruneConfig last chosen on the Prune page
STORED_REG = "sv_stored_reg"  # dict of the Regularize page settings
STORED_FINETUNE = "sv_stored_finetune"  # fine-tune epochs on the Prune page
STORED_SPEED = "sv_stored_speed"  # Speed page settings (so a cached measurement shows again)
STORED_QUANT = "sv_stored_quant"  # Quantize page settings (method, granularity, bits, grid)
STORED_ACTIVATIONS = "sv_stored_activations"  # Activations page settings (input index, layer, k-WTA)
EXPERTS_NOTHING_KEPT = "sv_experts_nothing_kept"  # set when a fine-tune was stopped before its first epoch ended
STORED_EXPERTS_TUNED = "sv_stored_experts_tuned"  # ExpertsConfig of the Experts page's last fine-tune (shown while it applies)
STORED_DISPLAY = "sv_stored_display"  # the sidebar's Display toggles as last set ({"projector", "axes"}), in the URL
STORED_SENSITIVITY = "sv_stored_sensitivity"  # Layer sensitivity page settings (strategy, levels, seeds, target)
PLAYGROUND = "sv_playground"  # the Playground page's PlaygroundRun (spec, network, masks, history, hand cuts)
PLAYGROUND_MSG = "sv_playground_msg"  # (level, text) of the Playground's last run, cut or link rebuild
STORED_LESSON = "sv_stored_lesson"  # {"lesson": name, "step": index} last chosen / set up on the Lessons page
LESSON_REVEALED = "sv_lesson_revealed"  # {(lesson, step index)} this student has revealed
PRUNE_SLIDER = "prune_sparsity"  # the Prune page's sparsity slider (reset and uploads clear it)

# --- runs ------------------------------------------------------------------------------
STOP = "sv_stop_requested"  # library-side stop flag of the next / running training or lab run
TRAIN_LOG = "sv_train_log"  # {page: {"history": [...], "message": str, "level": str, "title": str}}

LASTING = "sv_lasting"  # [(level, text)] messages of this run that a rerun the app starts must not wipe
LASTING_NEXT = "sv_lasting_next"  # the same, carried into that rerun (widgets.rerun_keeping_messages)

# --- uploads ---------------------------------------------------------------------------
UPLOAD_MSG = "sv_upload_msg"  # (level, text) of the last upload
UPLOAD_TOKEN = "sv_upload_token"  # which uploaded file was loaded last (the uploader keeps its file)
OWN_BENCH = "sv_own_bench"  # Workbench of this session's own model (spec + checkpoint) as uploaded, or absent
OWN_DATASETS = "sv_own_datasets"  # {name: Dataset} uploaded in this session (never in the shared cache)
OWN_MSG = "sv_own_msg"  # (level, text) of the last "your own model" upload
OWN_SPEC_FILE = "home_own_spec"  # Home's file uploaders of the own-model section
OWN_CKPT_FILE = "home_own_ckpt"
OWN_DATA_FILE = "home_own_data"

# --- per-session caches (app_state.cache.BoundedCache, bounded by entries and bytes) ------
ACC_CACHE = "sv_acc_cache"  # {(id(model), dataset): (model, accuracy)}
FAST = "sv_fast_models"  # {id(model): (model, compiled model or None)}
SPEED = "sv_speed"  # {measurement_key(...): SpeedReport}
SPARSE_CKPT = "sv_sparse_ckpt"  # {id(model): (model, SparseSave, round-trip ok)}
LAB = "sv_lab_results"  # {(fingerprint, dataset, config): strategy-lab result}
QUANT = "sv_quant"  # {(id(current model), (dataset, config or part)): (model, QuantizeResult / accuracy / sizes)}
QUANT_GRID = "sv_quant_grid"  # {(fingerprint, dataset, QuantGridConfig): accuracy grid frame}
ACTIVATIONS = "sv_activations"  # {(id(model), (dataset, what)): (model, report / k-WTA copy / accuracy / histogram)}
EXPERTS = "sv_experts"  # {ExpertsConfig or ("timing", ExpertsConfig): ExpertsView / compute timing rows}
SENSITIVITY = "sv_sensitivity"  # {(fingerprint, dataset, ScanConfig): per-layer sensitivity scan frame}
UNITS_CLICK = "sv_units_click"  # {grid figure name: unit its selection last reported} on "What units see"
UNITS_UNIT = "units_unit"  # "What units see": the unit number input (a click on a tile sets it)


STORED_PREFIX = "sv_stored_"  # every stored page-settings key starts so; the rest names its URL parameters


def stored_page(page: str) -> str:
    """The stored settings of ``page`` (a page without its own STORED_* key); URL parameters ``<page>.<field>``."""
    return STORED_PREFIX + page


def model_of(widgets: str) -> str:
    """The model a page's model-ranged ``widgets`` were last set for (``settings.follow_model``)."""
    return f"sv_model_of_{widgets}"


def figure(name: str) -> str:
    """The ``st.plotly_chart`` of figure ``name``."""
    return f"fig_{name}"


def png_button(name: str) -> str:
    """The *Prepare PNG* button under figure ``name``."""
    return f"png_{name}"


def png_download(name: str) -> str:
    """The *Download PNG* button that follows it."""
    return f"dl_{png_button(name)}"


def csv_download(name: str) -> str:
    """The *Download CSV* button under table ``name``."""
    return f"csv_{name}"


def training_option(page: str, name: str) -> str:
    """The dropout / DropConnect slider or the "Train on" choice (``name``) of a page that trains."""
    return f"{page}_opt_{name}"


def stop_button(run: str) -> str:
    """The Stop button of a running training or lab run."""
    return f"{run}_stop"


def sweep_place(page: str) -> str:
    """The "Run on" choice (this machine / Ray cluster) of a page that sweeps."""
    return f"{page}_run_on"
