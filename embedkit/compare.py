"""Pairwise face comparison: how similar are the faces in two images?"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from embedkit.errors import EmbedkitError
from embedkit.faces.select import subject_face
from embedkit.pipeline import FacePipeline


@dataclass
class Comparison:
    """The answer to "is this the same person?".

    ``score`` is the cosine similarity of the two faces' embeddings (higher =
    more alike, at most 1), ``distance`` the Euclidean distance between the
    unit vectors (``sqrt(2 - 2 * score)``), ``same`` whether the score reaches
    the model's ``threshold``. When an image holds several faces, its subject
    (the face nearest the image centre, :mod:`embedkit.faces.select`; the rule
    of ``evaluate`` and ``finetune`` too) is compared and ``faces_a`` /
    ``faces_b`` say how many there were.
    """

    path_a: str
    path_b: str
    score: float
    distance: float
    same: bool
    threshold: float
    calibrated: bool
    model_id: str
    faces_a: int
    faces_b: int
    box_a: list[float]
    box_b: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two unit-length embeddings."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


def compare_files(pipeline: FacePipeline, path_a, path_b) -> Comparison:
    """Compare the subject face of each image; raises EmbedkitError naming the file without a face."""
    results = list(pipeline.embed_files([path_a, path_b]))
    for result in results:
        if result.error:
            raise EmbedkitError(f"{result.path}: {result.error}")
        if not result.faces:
            raise EmbedkitError(f"{result.path}: no face found")
    a, b = results
    ka, kb = subject_face(a.faces, a.path), subject_face(b.faces, b.path)
    score = similarity(a.embeddings[ka], b.embeddings[kb])
    encoder = pipeline.encoder
    threshold = encoder.same_threshold
    return Comparison(
        path_a=a.path, path_b=b.path, score=score, distance=math.sqrt(max(0.0, 2.0 - 2.0 * score)),
        same=score >= threshold, threshold=threshold, calibrated=encoder.threshold is not None,
        model_id=encoder.model_id, faces_a=len(a.faces), faces_b=len(b.faces),
        box_a=[round(v, 1) for v in a.faces[ka].box], box_b=[round(v, 1) for v in b.faces[kb].box],
    )
