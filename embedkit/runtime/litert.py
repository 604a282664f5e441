"""LiteRT (TensorFlow Lite) back-end: convert a Keras encoder once, run it without TensorFlow.

Converting needs TensorFlow; running needs only ``ai-edge-litert`` (imports
in milliseconds), with XNNPACK on the CPU.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os

import numpy as np

from embedkit.runtime.tf import native_stderr_silenced

logger = logging.getLogger(__name__)

MODEL_FILE = "encoder.tflite"
# Largest difference allowed between TensorFlow's and the conversion's
# embeddings (unit vectors) before the conversion is refused.
MAX_CONVERSION_ERROR = 1e-4
# Quantised conversions a backbone may ask for (BackboneSpec.litert_quantization),
# only where LFW accuracy was measured to hold (benchmarks/bench_quant.py):
# ``fp16`` stores float16 weights (computed in float32): half the file, less memory.
QUANTIZATIONS = ("fp16",)
# A quantised conversion is refused if any check embedding's cosine to
# TensorFlow's is below this (facenet fp16: 0.999997 or more on LFW).
MIN_QUANTIZED_COSINE = 0.9999


def available() -> bool:
    """True when the LiteRT interpreter can be imported."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def convert(encoder, quantization: str | None = None) -> bytes:
    """The LiteRT flatbuffer of a TensorFlow :class:`~embedkit.encoder.Encoder` (batch size free).

    ``quantization``: None (float32, the same embeddings as TensorFlow's) or
    one of :data:`QUANTIZATIONS`. Raises RuntimeError if the conversion's
    embeddings differ from TensorFlow's by more than
    :data:`MAX_CONVERSION_ERROR` (float32), or a quantised one's cosine to
    them falls below :data:`MIN_QUANTIZED_COSINE`.
    """
    import tensorflow as tf

    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; expected one of {', '.join(QUANTIZATIONS)}")
    network = encoder.network
    size = encoder.input_size
    converter = tf.lite.TFLiteConverter.from_keras_model(network)
    if quantization == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    # The converter prints what it saves on stdout, which belongs to the command's output.
    with contextlib.redirect_stdout(io.StringIO()), native_stderr_silenced((1, 2)):
        flatbuffer = converter.convert()
    check = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    batch = encoder.preprocessing(check)
    expected = np.asarray(network(batch, training=False))
    got = LiteRTModel(flatbuffer, threads=1).run(batch)
    if quantization is None:
        error = float(np.max(np.abs(expected - got)))
        if not error <= MAX_CONVERSION_ERROR:
            raise RuntimeError(f"LiteRT conversion differs from TensorFlow by {error:.2g}")
        logger.info("LiteRT conversion matches TensorFlow to %.2g", error)
        return flatbuffer
    unit = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
    cosine = float(np.min(np.sum(unit * expected, axis=1) / np.maximum(np.linalg.norm(expected, axis=1), 1e-12)))
    if not cosine >= MIN_QUANTIZED_COSINE:
        raise RuntimeError(f"{quantization} LiteRT conversion's cosine to TensorFlow is only {cosine:.4f}")
    logger.info("%s LiteRT conversion: cosine to TensorFlow %.4f or more", quantization, cosine)
    return flatbuffer


class LiteRTModel:
    """A converted encoder: float32 ``(N, size, size, 3)`` in, ``(N, d)`` out.

    Args:
        model: path to a ``.tflite`` file or its bytes.
        threads: CPU threads for XNNPACK.
    """

    def __init__(self, model, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        threads = threads or default_threads()
        source = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": str(model)}
        with native_stderr_silenced():  # "Created TensorFlow Lite XNNPACK delegate"
            self._interpreter = Interpreter(**source, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        interpreter = self._interpreter
        if self._batch != len(batch):
            interpreter.resize_tensor_input(self._input, batch.shape)
            with native_stderr_silenced():
                interpreter.allocate_tensors()
            self._batch = len(batch)
        interpreter.set_tensor(self._input, batch)
        interpreter.invoke()
        return interpreter.get_tensor(self._output).copy()
