"""Compression: honest sizes, a real Huffman coder, compressed checkpoints, ONNX export.

``size.size_table`` counts the bytes of every prunable weight as dense fp32, pruned CSR,
quantized codes with Han et al.'s relative indices, and Huffman-coded streams, from the
byte strings it really builds; ``checkpoint.save_compressed`` stores those streams in a
safetensors file that ``load_compressed`` turns back into the same model;
``onnx_export`` writes an ONNX file (QDQ or codebook weights) checked with onnxruntime;
``pipeline`` runs Deep Compression end to end (prune, retrain, quantize, train the codebook, Huffman).
"""

from .checkpoint import load_compressed, save_compressed
from .huffman import CodeTable, HuffmanError, code_lengths, huffman_bits
from .onnx_export import OnnxExport, check_onnx, export_onnx, export_sizes, run_onnx
from .pipeline import CompressionResult, compress, deep_compression
from .size import EncodedLayer, encode_layer, relative_index, size_table

__all__ = [
    "CodeTable",
    "CompressionResult",
    "EncodedLayer",
    "HuffmanError",
    "OnnxExport",
    "check_onnx",
    "code_lengths",
    "compress",
    "deep_compression",
    "encode_layer",
    "export_onnx",
    "export_sizes",
    "huffman_bits",
    "load_compressed",
    "relative_index",
    "run_onnx",
    "save_compressed",
    "size_table",
]
