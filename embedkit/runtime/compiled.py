"""An encoder that runs a converted model: the same ``encode()`` as the TensorFlow one."""

from __future__ import annotations

import logging
import threading
from typing import Callable

import numpy as np

from embedkit.backbones import Preprocessing
from embedkit.encoder import UNCALIBRATED_THRESHOLD, embed_batches

logger = logging.getLogger(__name__)


class CompiledEncoder:
    """A converted encoder with the attributes and ``encode()`` of :class:`~embedkit.encoder.Encoder`.

    The model is opened on the first ``encode()`` (``open_model()`` returns an
    object whose ``run(float_batch)`` gives embeddings), so a run that has
    nothing to embed never pays for it.

    Args:
        backbone: registry name of the backbone.
        preprocessing: the backbone's pixel preparation.
        embedding_dim: size of the embeddings.
        model_id: the id TensorFlow computed from the weights when converting.
        open_model: opens the converted model.
        backend: name of the back-end (``litert``, ``opencv-onnx``), for reports.
        threshold: calibrated same-person threshold, or None.
        weights_source: as :class:`~embedkit.encoder.Encoder` has it.
        metadata: anything else known about the model.
    """

    def __init__(self, backbone: str, preprocessing: Preprocessing, embedding_dim: int, model_id: str,
                 open_model: Callable, backend: str, threshold: float | None = None,
                 weights_source: str = "pretrained", metadata: dict | None = None):
        self.backbone = backbone
        self.preprocessing = preprocessing
        self.embedding_dim = int(embedding_dim)
        self.model_id = model_id
        self.backend = backend
        self.threshold = threshold
        self.weights_source = weights_source
        self.metadata = dict(metadata or {})
        self._open_model = open_model
        self._model = None
        self._lock = threading.Lock()
        # Set by embedkit.runtime for bulk jobs: the encoder that is faster for many faces.
        self.bulk_loader: Callable | None = None
        self.bulk_min_faces = 0
        # The crop framing the model was trained on (see embedkit.faces.align).
        self.alignment = "facenet"

    @property
    def input_size(self) -> int:
        return self.preprocessing.size

    @property
    def same_threshold(self) -> float:
        return self.threshold if self.threshold is not None else UNCALIBRATED_THRESHOLD

    def for_job(self, expected_faces: int):
        """The encoder for a job of about ``expected_faces`` faces: this one, or the faster-in-bulk one."""
        if self.bulk_loader is None or expected_faces < self.bulk_min_faces:
            return self
        logger.info("%d faces to embed: switching to the TensorFlow graph", expected_faces)
        other = self.bulk_loader()
        if other.model_id != self.model_id:
            logger.warning("TensorFlow model id %s differs from the converted model's %s; staying on %s",
                           other.model_id, self.model_id, self.backend)
            return self
        return other

    def _runner(self):
        with self._lock:
            if self._model is None:
                self._model = self._open_model()
            return self._model

    def encode(self, faces, batch_size: int = 64, flip: bool = False) -> np.ndarray:
        """Unit-length embeddings ``(N, d)`` of aligned uint8 crops ``(N, size, size, 3)``."""
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[None]
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        model = self._runner()
        with self._lock:  # one interpreter: one batch at a time
            return embed_batches(model.run, self.preprocessing, faces, batch_size, flip)
