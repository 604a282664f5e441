"""Pairwise face comparison: how similar are the faces in two images?"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import numpy as np

from embedkit.errors import EmbedkitError
from embedkit.evaluation.reference import phrase, reference_for
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
    ``strangers_below`` is the share of pairs of different people (the
    model's impostor reference) that score lower, ``strangers`` says it in
    words and ``reference`` where the pairs come from; all three are None for
    a model without a reference.
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
    strangers_below: float | None = None
    strangers: str | None = None
    reference: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two unit-length embeddings."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


@dataclass
class _Subject:
    """What a comparison needs of one file: its subject face's box and embedding, and the face count."""

    path: str
    faces: int
    box: list[float] | None = None
    embedding: np.ndarray | None = None
    error: str | None = None

    @classmethod
    def of(cls, result) -> "_Subject":
        if result.error:
            return cls(result.path, 0, error=result.error)
        if not result.faces:
            return cls(result.path, 0, error="no face found")
        k = subject_face(result.faces, result.path)
        box = [round(v, 1) for v in result.faces[k].box]
        return cls(result.path, len(result.faces), box, result.embeddings[k])


def _compare(encoder, chosen, reference, a: _Subject, b: _Subject) -> Comparison:
    score = similarity(a.embedding, b.embedding)
    comparison = Comparison(
        path_a=a.path, path_b=b.path, score=score, distance=math.sqrt(max(0.0, 2.0 - 2.0 * score)),
        same=score >= chosen.value, threshold=chosen.value, calibrated=chosen.calibrated,
        model_id=encoder.model_id, faces_a=a.faces, faces_b=b.faces, box_a=a.box, box_b=b.box,
    )
    place_among_strangers(comparison, reference)
    return comparison


def compare_files(pipeline: FacePipeline, path_a, path_b, threshold: float | None = None, store=None) -> Comparison:
    """Compare the subject face of each image; raises EmbedkitError naming the file without a face.

    The same-person threshold is ``threshold`` if given, else the one for the
    pipeline's model and face setting (a calibration in the index metadata
    ``store``, the model's, the backbone's; see :mod:`embedkit.calibration`).
    """
    from embedkit.calibration import threshold_for

    a, b = (_Subject.of(result) for result in pipeline.embed_files([path_a, path_b]))
    for side in (a, b):
        if side.error:
            raise EmbedkitError(f"{side.path}: {side.error}")
    reference = reference_for(pipeline.encoder, pipeline.extractor.describe())
    return _compare(pipeline.encoder, threshold_for(pipeline, store, threshold), reference, a, b)


@dataclass
class PairProblem:
    """A pair that could not be compared: ``error`` names the file(s) and the reason."""

    path_a: str
    path_b: str
    error: str

    def to_dict(self) -> dict:
        return asdict(self)


def compare_pairs(pipeline: FacePipeline, pairs: Iterable[tuple[str, str]], threshold: float | None = None,
                  store=None) -> Iterator[Comparison | PairProblem]:
    """Compare many pairs in one run, each photo embedded once; one result per pair, in order.

    A pair with an unreadable photo or one without a face gives a
    :class:`PairProblem`, and the other pairs go on. The threshold is chosen
    as in :func:`compare_files`.
    """
    from embedkit.calibration import threshold_for

    chosen = threshold_for(pipeline, store, threshold)
    reference = reference_for(pipeline.encoder, pipeline.extractor.describe())
    pairs = [(str(a), str(b)) for a, b in pairs]
    unique = list(dict.fromkeys(path for pair in pairs for path in pair))
    pipeline.prepare(len(unique))
    seen = {result.path: _Subject.of(result) for result in pipeline.embed_files(unique)}
    for a, b in pairs:
        errors = [f"{side.path}: {side.error}" for side in (seen[a], seen[b]) if side.error]
        yield PairProblem(a, b, "; ".join(errors)) if errors else _compare(pipeline.encoder, chosen, reference, seen[a],
                                                                              seen[b])


def place_among_strangers(comparison: Comparison, reference) -> None:
    """Fill in where ``comparison.score`` sits among the reference's impostor pairs (if there is one)."""
    if reference is None:
        return
    below = reference.fraction_below(comparison.score)
    comparison.strangers_below = round(below, 6)
    comparison.strangers = phrase(below, reference.n_pairs)
    note = "; made with other face settings than this comparison's" if reference.about.get("face_setting_differs") else ""
    comparison.reference = reference.describe() + note
