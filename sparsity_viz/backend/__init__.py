"""Sparse compute backend: pruned models compiled into real sparse kernels, verified and measured.

Entry points:
    compile_model(model, masks=None, batch_size=256, device="auto") -> CompiledModel (.explain())
    benchmark_model / benchmark_layers -> tidy DataFrames (latency, ratios, bytes)
    speedup_curves / crossovers -> speed-up vs sparsity and the crossover per format
    save_sparse / load_sparse -> compact, bit-exact sparse checkpoints
    native_available() / native_notice() -> whether the C++ kernel is in use, and why not
"""

from .bench import benchmark_layer, benchmark_layers, benchmark_model, crossovers, speedup_curves
from .compiled import CompiledModel, compile_model
from .cuda import cuda_status
from .dispatch import ALL_FORMATS, FormatUnavailable
from .kernels import available as native_available
from .kernels import notice as native_notice
from .sparse_checkpoint import load_sparse, save_sparse

__all__ = [
    "ALL_FORMATS",
    "CompiledModel",
    "FormatUnavailable",
    "benchmark_layer",
    "benchmark_layers",
    "benchmark_model",
    "compile_model",
    "crossovers",
    "cuda_status",
    "load_sparse",
    "native_available",
    "native_notice",
    "save_sparse",
    "speedup_curves",
]
