"""Inference back-ends behind one ``encode()``: the TensorFlow graph, LiteRT, ONNX.

The rest of embedkit asks :func:`load_encoder` for an encoder and calls its
``encode()``; which back-end runs is decided here, per job:

- ``single`` (compare, query: a few faces, process start-up dominates): a
  LiteRT conversion of the Keras encoder, made once with TensorFlow and
  cached beside the weights (see :mod:`embedkit.runtime.cache`). With the
  conversion cached, no TensorFlow is imported.
- ``bulk`` (index, evaluate: thousands of faces): the same LiteRT model
  while the job is small; TensorFlow's frozen graph when the job is large
  enough to repay importing TensorFlow (see :data:`BULK_TF_MIN_FACES`).

ONNX-only backbones (``sface``) always run on OpenCV's DNN module.
"""

from embedkit.runtime.select import BACKENDS, JOBS, load_encoder

__all__ = ["BACKENDS", "JOBS", "load_encoder"]
