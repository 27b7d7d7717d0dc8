"""Quantization: fewer bits per weight, and the zeros that rounding creates.

One file per method behind ``registry.QUANTIZERS`` (``uniform_symmetric``,
``uniform_affine``, ``kmeans``, ``ternary``); ``base.Quantizer`` is the contract
and ``base.QuantizedTensor`` the result (codes + codebook). ``model.quantize_model``
quantizes every prunable weight of a copy of a model and reports the zeros created;
``qat`` fine-tunes through the training engine with the quantizer in the loop.
"""

from .base import QuantizedTensor, Quantizer
from .model import QuantizedModel, quantize_model
from .registry import QUANTIZERS, get_quantizer, quantizer_names
from .qat import QuantizationHook, quantize_aware_finetune

__all__ = [
    "QUANTIZERS",
    "QuantizationHook",
    "QuantizedModel",
    "QuantizedTensor",
    "Quantizer",
    "get_quantizer",
    "quantize_aware_finetune",
    "quantize_model",
    "quantizer_names",
]
