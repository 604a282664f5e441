"""Pairwise face comparison: how similar are the faces in two images?"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import numpy as np

from embedkit.errors import EmbedkitError
from embedkit.pipeline import FacePipeline


@dataclass
class Comparison:
    """The answer to "is this the same person?".

    ``score`` is the cosine similarity of the two faces' embeddings (higher =
    more alike, at most 1), ``distance`` the Euclidean distance between the
    unit vectors (``sqrt(2 - 2 * score)``), ``same`` whether the score reaches
    the model's ``threshold``. When an image holds several faces, its largest
    face is compared and ``faces_a`` / ``faces_b`` say how many there were.
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


@dataclass
class _Largest:
    """What a comparison needs of one file: its largest face's box and embedding, and the face count."""

    path: str
    faces: int
    box: list[float] | None = None
    embedding: np.ndarray | None = None
    error: str | None = None

    @classmethod
    def of(cls, result) -> "_Largest":
        if result.error:
            return cls(result.path, 0, error=result.error)
        if not result.faces:
            return cls(result.path, 0, error="no face found")
        box = [round(v, 1) for v in result.faces[0].box]
        return cls(result.path, len(result.faces), box, result.embeddings[0])


def _compare(encoder, a: _Largest, b: _Largest) -> Comparison:
    score = similarity(a.embedding, b.embedding)
    threshold = encoder.same_threshold
    return Comparison(
        path_a=a.path, path_b=b.path, score=score, distance=math.sqrt(max(0.0, 2.0 - 2.0 * score)),
        same=score >= threshold, threshold=threshold, calibrated=encoder.threshold is not None,
        model_id=encoder.model_id, faces_a=a.faces, faces_b=b.faces, box_a=a.box, box_b=b.box,
    )


def compare_files(pipeline: FacePipeline, path_a, path_b) -> Comparison:
    """Compare the largest face in each image; raises EmbedkitError naming the file without a face."""
    a, b = (_Largest.of(result) for result in pipeline.embed_files([path_a, path_b]))
    for side in (a, b):
        if side.error:
            raise EmbedkitError(f"{side.path}: {side.error}")
    return _compare(pipeline.encoder, a, b)


@dataclass
class PairProblem:
    """A pair that could not be compared: ``error`` names the file(s) and the reason."""

    path_a: str
    path_b: str
    error: str

    def to_dict(self) -> dict:
        return asdict(self)


def compare_pairs(pipeline: FacePipeline, pairs: Iterable[tuple[str, str]]) -> Iterator[Comparison | PairProblem]:
    """Compare many pairs in one run, each photo embedded once; one result per pair, in order.

    A pair with an unreadable photo or one without a face gives a
    :class:`PairProblem`, and the other pairs go on.
    """
    pairs = [(str(a), str(b)) for a, b in pairs]
    unique = list(dict.fromkeys(path for pair in pairs for path in pair))
    pipeline.prepare(len(unique))
    seen = {result.path: _Largest.of(result) for result in pipeline.embed_files(unique)}
    for a, b in pairs:
        errors = [f"{side.path}: {side.error}" for side in (seen[a], seen[b]) if side.error]
        yield PairProblem(a, b, "; ".join(errors)) if errors else _compare(pipeline.encoder, seen[a], seen[b])
