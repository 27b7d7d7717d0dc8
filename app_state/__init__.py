"""The app's state layer: the ONLY place that touches ``st.session_state`` and ``st.cache_*``.

Data flows one way: views -> ``app_state`` -> the ``sparsity_viz`` library. One idea per module:

    keys        every session key, defined once
    cache       the one cache mechanism (LRU bounded by entries and bytes); per-session and shared caches
    resources   st.cache_resource: bundled models, datasets, cards (shared, read-only)
    url         query parameters in and out, the share link
    settings    page settings that survive page changes, mirrored in the URL as <page>.<field> (one mechanism)
    links       a link's model state applied on a session's first run (pruned, or rebuilt from a recipe)
    workbench   this session's model, dataset, device and current (pruned) model
    evaluation  accuracies, through the compiled sparse model where faster
    sidebar     the workbench sidebar drawn on every page
    widgets     figures with PNG export (projector mode applied here), tables with CSV, messages by level
    strategy_labels  strategy names for menus, marked slow where a live step was measured slow
    runs        live training and lab runs under a progress bar and a Stop button
    training_options  the dropout / DropConnect / train-share widgets of every page that trains
    quantize    the Quantize page: live quantization of the current model, the sparsity x bits grid
    activations the Activations page: activation-sparsity reports dense vs current, one input, k-WTA
    sensitivity the Layer sensitivity page: the per-layer scan of the dense model, the guided per-layer targets
    playground  the Playground page: a small MLP trained live from scratch (dense or sparse), hand cuts, pg_* URL
    experts     the Experts (MoE) page: bundled MoE models, routing reports per setting, fine-tune, timing
    lab         results per configuration: strategy lab (session) and curves (shared)
    sweep_runs  where sweeps run (this machine / Ray cluster when RAY_ADDRESS is set), the results-store directory
    speed       Speed page measurements and the sparse checkpoint, per model
    upload      Home's uploads: a checkpoint of the selected model; your own model (spec + checkpoint + data)
    reports     the current model's sparsity report, effective sparsity, collapse warnings (shared by content)
    units       the "What units see" page: receptive fields dense vs current (shared by content), the clicked unit

Views import from here only what they draw with; this file re-exports it.
"""

from . import keys
from .activations import (
    ActivationsResult,
    activation_result,
    class_table,
    input_activations,
    input_info,
    kwinners_available,
    layer_histograms,
    split_points,
    split_size,
    store_activations,
    stored_activations,
)
from .evaluation import accuracy, curves_evaluator, dense_accuracy, eval_model
from .experts import (
    ExpertsConfig,
    experts_view,
    finetune_kept_nothing,
    finetune_run,
    forget_finetune,
    measure_timing,
    moe_dataset,
    moe_names,
    moe_strategies,
    spec_of,
    timing,
    tuned_config,
)
from .lab import (
    compare_result,
    compare_run_config,
    compare_sweep_run,
    curves_result,
    curves_run,
    lab_batch,
    lab_failure,
    lab_quick,
    lab_result,
    lottery_key,
    lottery_problem,
    lottery_run,
    run_lab,
    schedule_run,
    scheduled_strategy_names,
    show_run_table,
)
from .quantize import (
    FP32_BITS,
    GRID_SPARSITY_OPTIONS,
    QuantGridConfig,
    QuantizeConfig,
    cheapest_near_dense,
    compressed_checkpoint,
    compressed_checkpoint_download,
    grid_reading,
    grid_result,
    grid_run,
    grid_strategies,
    layer_inputs,
    quantize_current,
    quantize_summary,
    quantizers,
    size_caption,
    size_table_of,
    store_quant,
    stored_quant,
)
from .resources import compatible_datasets, sample_card, sample_names, shared_model
from .links import link_carries
from .runs import request_stop, run_training, show_training_log, training_log
from .playground import (
    Slots as PlaygroundSlots,
    cut_by_hand,
    cut_choices,
    dynamics_labels,
    init_labels,
    playground,
    playground_numbers,
    reset_playground,
    set_playground_spec,
    show_playground,
    show_playground_message,
    train_live,
)
from .lessons import (
    apply_step,
    choose_lesson,
    home_steps,
    is_revealed,
    mark_revealed,
    page_path,
    registered_lessons,
    step_is_set,
    stored_lesson,
)
from .lessons import reveal as lesson_reveal
from .sensitivity import (
    LEVEL_OPTIONS,
    ScanConfig,
    guided_targets,
    scan_reading,
    scan_result,
    scan_run,
    scan_strategies,
    store_sensitivity,
    stored_sensitivity,
)
from .settings import (
    LAMBDAS,
    THRESHOLDS,
    follow_model,
    keep_page_settings,
    kept_value,
    page_settings,
    prune_slider_key,
    speed_format_options,
    store_finetune,
    store_prune,
    store_reg,
    store_speed,
    stored_finetune,
    stored_prune,
    stored_reg,
    stored_speed,
)
from .sidebar import kernel_notice, sidebar, sidebar_summary
from .speed import backend_notices, measure, native_kernel_building, sparse_checkpoint, speed_key, speed_result
from .sweep_runs import runs_dir, sweep_place
from .training_options import TrainingOptions, training_options
from .upload import load_own_model, load_upload, load_upload_once, own_message, spec_template, upload_message
from .reports import ModelReport, model_report
from .shared_figures import layer_heatmap
from .units import PER_PAGE as UNITS_PER_PAGE
from .units import UnitsView, selected_unit, store_units, stored_units, unit_graph, unit_grid, units_view
from .units import show_grid as show_unit_grid
from .url import set_url, share_link
from .strategy_labels import prune_spinner_text, slow_note, strategy_label
from .widgets import show_figure, show_message, show_sweep_notes, show_table
from .workbench import apply_prune, bench, choose_model, dataset, device, init, reset_bench, selected_model, set_bench

# The keys tests and pages read by their historical names.
KEY_BENCH = keys.BENCH
KEY_STOP = keys.STOP
KEY_FAST = keys.FAST
KEY_SPEED = keys.SPEED
KEY_SPARSE_CKPT = keys.SPARSE_CKPT

__all__ = [
    "ExpertsConfig", "experts_view", "finetune_kept_nothing", "finetune_run", "forget_finetune", "measure_timing", "moe_dataset", "moe_names",
    "moe_strategies", "spec_of", "timing", "tuned_config",
    "ActivationsResult", "activation_result", "class_table", "input_activations", "input_info", "kwinners_available",
    "layer_histograms", "split_points", "split_size", "store_activations", "stored_activations",
    "FP32_BITS", "GRID_SPARSITY_OPTIONS", "QuantGridConfig", "QuantizeConfig", "cheapest_near_dense", "compressed_checkpoint",
    "compressed_checkpoint_download", "grid_result",
    "grid_reading", "grid_run", "grid_strategies", "layer_inputs", "quantize_current", "quantize_summary",
    "quantizers", "size_caption", "size_table_of", "store_quant",
    "stored_quant",
    "LEVEL_OPTIONS", "ScanConfig", "guided_targets", "scan_reading", "scan_result", "scan_run", "scan_strategies",
    "store_sensitivity", "stored_sensitivity",
    "KEY_BENCH", "KEY_FAST", "KEY_SPARSE_CKPT", "KEY_SPEED", "KEY_STOP", "LAMBDAS", "THRESHOLDS", "accuracy",
    "apply_prune", "backend_notices", "bench", "choose_model", "compare_run_config", "compare_sweep_run",
    "compatible_datasets", "curves_evaluator", "curves_result", "curves_run", "dataset", "dense_accuracy", "device",
    "eval_model",
    "init", "kernel_notice", "keys", "lab_batch", "lab_failure", "lab_quick", "lab_result", "load_upload",
    "load_upload_once", "load_own_model", "own_message", "spec_template", "lottery_key", "lottery_problem",
    "lottery_run", "measure", "native_kernel_building", "request_stop",
    "reset_bench", "run_lab", "run_training", "sample_card", "sample_names", "schedule_run",
    "scheduled_strategy_names", "selected_model", "set_bench", "set_url", "share_link", "shared_model",
    "show_figure", "slow_note", "strategy_label", "prune_spinner_text", "show_message", "show_run_table", "show_sweep_notes", "show_table", "show_training_log", "sidebar", "sidebar_summary",
    "sparse_checkpoint", "speed_key", "speed_result", "store_finetune", "store_prune", "store_reg", "store_speed",
    "speed_format_options", "prune_slider_key", "stored_finetune", "stored_prune", "stored_reg", "stored_speed", "training_log", "upload_message",
    "TrainingOptions", "training_options",
    "ModelReport", "model_report", "layer_heatmap", "UNITS_PER_PAGE", "UnitsView", "selected_unit", "show_unit_grid", "store_units", "stored_units", "unit_graph", "unit_grid",
    "units_view",
    "link_carries", "page_settings", "keep_page_settings", "kept_value", "follow_model",
    "PlaygroundSlots", "cut_by_hand", "cut_choices", "dynamics_labels", "init_labels", "playground",
    "playground_numbers", "reset_playground", "set_playground_spec", "show_playground", "show_playground_message",
    "train_live",
    "apply_step", "choose_lesson", "home_steps", "is_revealed", "lesson_reveal", "mark_revealed",
    "page_path", "registered_lessons", "step_is_set", "stored_lesson",
]
