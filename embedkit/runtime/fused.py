"""An encoder that combines several: each embeds the face in its own framing, and the embeddings are joined.

Each part's unit-length embedding is weighted and the weighted parts are
concatenated, so the joined embedding is unit length too and the cosine
similarity of two faces is the weighted mean of the parts' cosines (score
fusion, as one vector that a FAISS index can hold). Equal weights are the
default: nothing about the parts is fitted.
"""

from __future__ import annotations

import hashlib

import numpy as np

from embedkit.encoder import UNCALIBRATED_THRESHOLD
from embedkit.faces.extract import framings_of


class FusedEncoder:
    """Several encoders as one, with the attributes and ``encode()`` of :class:`~embedkit.encoder.Encoder`.

    Args:
        backbone: registry name of the combination (``facenet+sface``).
        parts: the encoders, each with its own framing of the face.
        threshold: the combination's calibrated same-person threshold, or None.
        weights: each part's share of the cosine (default equal); they must sum to 1.
    """

    def __init__(self, backbone: str, parts: list, threshold: float | None = None,
                 weights: tuple[float, ...] | None = None):
        if len(parts) < 2:
            raise ValueError("a fused encoder needs at least two parts")
        if any(len(framings_of(part)) != 1 for part in parts):
            raise ValueError("each part of a fused encoder takes one framing of the face")
        weights = tuple(weights) if weights is not None else (1.0 / len(parts),) * len(parts)
        if len(weights) != len(parts) or min(weights) <= 0 or abs(sum(weights) - 1.0) > 1e-9:
            raise ValueError(f"weights {weights} must be positive, one per part, and sum to 1")
        self.backbone = backbone
        self.parts = list(parts)
        self.weights = weights
        self.threshold = threshold
        self.weights_source = "pretrained"
        self.metadata: dict = {}

    @property
    def framings(self):
        return tuple(framing for part in self.parts for framing in framings_of(part))

    @property
    def input_size(self) -> int:
        return self.framings[0][0]

    @property
    def preprocessing(self):
        return self.parts[0].preprocessing

    @property
    def embedding_dim(self) -> int:
        return sum(part.embedding_dim for part in self.parts)

    @property
    def backend(self) -> str:
        return "+".join(getattr(part, "backend", "tensorflow") for part in self.parts)

    @property
    def same_threshold(self) -> float:
        return self.threshold if self.threshold is not None else UNCALIBRATED_THRESHOLD

    @property
    def model_id(self) -> str:
        digest = hashlib.sha256(repr((self.weights, [part.model_id for part in self.parts])).encode())
        return f"{self.backbone}-{digest.hexdigest()[:16]}"

    def for_job(self, expected_faces: int) -> "FusedEncoder":
        """The same combination with each part on the back-end that suits a job of this size."""
        parts = [part.for_job(expected_faces) if hasattr(part, "for_job") else part for part in self.parts]
        if all(new is old for new, old in zip(parts, self.parts)):
            return self
        return FusedEncoder(self.backbone, parts, self.threshold, self.weights)

    def encode(self, faces, batch_size: int = 64, flip: bool = False) -> np.ndarray:
        """Unit-length ``(N, sum of the parts' dims)`` embeddings of one crop array per framing.

        ``faces`` is a tuple as :func:`embedkit.faces.extract.stack_crops`
        gives it, the crops in the order of :attr:`framings`.
        """
        if not isinstance(faces, (tuple, list)) or len(faces) != len(self.parts):
            raise ValueError(f"{self.backbone} takes {len(self.parts)} crops of each face "
                             f"(framings {self.framings}); got {type(faces).__name__}")
        counts = {int(np.prod(np.shape(crops)[:-3])) for crops in faces}
        if len(counts) != 1:
            raise ValueError(f"{self.backbone}: the framings hold different numbers of faces {sorted(counts)}")
        joined = [np.sqrt(weight) * part.encode(crops, batch_size, flip)
                  for part, crops, weight in zip(self.parts, faces, self.weights)]
        return np.ascontiguousarray(np.concatenate(joined, axis=1), dtype=np.float32)
