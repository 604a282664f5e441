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


def available() -> bool:
    """True when the LiteRT interpreter can be imported."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def convert(encoder) -> bytes:
    """The LiteRT flatbuffer of a TensorFlow :class:`~embedkit.encoder.Encoder` (batch size free).

    Raises RuntimeError if the conversion's embeddings differ from
    TensorFlow's by more than :data:`MAX_CONVERSION_ERROR`.
    """
    import tensorflow as tf

    network = encoder.network
    size = encoder.input_size
    # The converter prints what it saves on stdout, which belongs to the command's output.
    with contextlib.redirect_stdout(io.StringIO()), native_stderr_silenced((1, 2)):
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(network).convert()
    check = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    batch = encoder.preprocessing(check)
    expected = np.asarray(network(batch, training=False))
    got = LiteRTModel(flatbuffer, threads=1).run(batch)
    error = float(np.max(np.abs(expected - got)))
    if not error <= MAX_CONVERSION_ERROR:
        raise RuntimeError(f"LiteRT conversion differs from TensorFlow by {error:.2g}")
    logger.info("LiteRT conversion matches TensorFlow to %.2g", error)
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
