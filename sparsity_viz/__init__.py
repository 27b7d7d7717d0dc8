"""sparsity_viz: watch neural-network sparsity happen.

The public API, re-exported flat. The library never imports streamlit.
"""

from .checkpoints import CheckpointError, available_samples, load_checkpoint_bytes, load_sample, save_model
from .data import DATASET_NAMES, Dataset, load_dataset
from .devices import DeviceUnavailableError, configure_threads, resolve_device
from .masks import Masks, apply_masks, from_torch_prune, full_masks, masked_copy, sparsity, to_torch_prune
from .models import MODELS, build_model, prunable_layers, prunable_parameters
from .pruning import STRATEGIES, Pruned, get_strategy, prune

__version__ = "0.1.0"
