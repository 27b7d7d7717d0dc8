"""sparsity_viz: watch neural-network sparsity happen.

The public API, re-exported flat. Light names are imported eagerly; names whose
modules pull in Captum, Plotly or pandas load on first use, so ``import sparsity_viz``
stays fast. The library never imports streamlit.
"""

from importlib import import_module

from .checkpoints import CheckpointError, available_samples, load_checkpoint_bytes, load_sample, save_model
from .data import DATASET_NAMES, Dataset, load_dataset
from .devices import DeviceUnavailableError, configure_threads, resolve_device
from .masks import Masks, apply_masks, from_torch_prune, full_masks, masked_copy, sparsity, to_torch_prune
from .models import MODELS, build_model, prunable_layers, prunable_parameters
from .pruning import STRATEGIES, Pruned, get_strategy, one_shot_strategy_names, prune, scheduled_strategy_names
from .regularizers import REGULARIZERS, get_regularizer
from .reports import sparsity_report
from .training import TrainConfig, TrainHook, TrainingDiverged, evaluate, evaluate_dataset, train

__version__ = "0.1.0"

__all__ = [
    "DATASET_NAMES", "METHODS", "MODELS", "REGULARIZERS", "STRATEGIES",
    "CheckpointError", "Dataset", "DeviceUnavailableError", "Masks", "Pruned", "TrainConfig", "TrainHook",
    "TrainingDiverged",
    "apply_masks", "attribute", "available_samples", "build_graph", "build_model", "compare_attributions",
    "configure_threads", "dead_neurons", "evaluate", "evaluate_dataset", "from_torch_prune", "full_masks",
    "get_regularizer", "get_strategy", "input_fanout", "layer_collapse", "load_checkpoint_bytes", "load_dataset",
    "load_sample", "masked_copy", "one_shot_strategy_names", "prunable_layers", "prunable_parameters", "prune",
    "resolve_device", "save_model", "scheduled_strategy_names", "sparsity", "sparsity_report", "summarize", "sweep",
    "to_torch_prune", "train",
    "QUANTIZERS", "get_quantizer", "quantize_model", "quantize_aware_finetune", "size_table", "save_compressed",
    "load_compressed", "deep_compression", "export_onnx",
]

_LAZY = {
    "sweep": "experiments",
    "summarize": "experiments",
    "attribute": "attribution",
    "compare_attributions": "attribution",
    "METHODS": "attribution",
    "build_graph": "graph",
    "dead_neurons": "connectivity",
    "input_fanout": "connectivity",
    "layer_collapse": "connectivity",
    "QUANTIZERS": "quantization",
    "get_quantizer": "quantization",
    "quantize_model": "quantization",
    "quantize_aware_finetune": "quantization",
    "size_table": "compression",
    "save_compressed": "compression",
    "load_compressed": "compression",
    "deep_compression": "compression",
    "export_onnx": "compression",
    "quantization": None,
    "compression": None,
    "figures": None,
    "attribution": None,
    "graph": None,
    "backend": None,
    "experiments": None,
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sparsity_viz' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        return import_module(f".{name}", __name__)
    return getattr(import_module(f".{module}", __name__), name)
