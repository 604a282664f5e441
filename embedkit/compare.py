"""Pairwise face comparison: how similar are the faces in two images?"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from embedkit.errors import EmbedkitError
from embedkit.evaluation.reference import phrase, reference_for
from embedkit.pipeline import FacePipeline


@dataclass
class Comparison:
    """The answer to "is this the same person?".

    ``score`` is the cosine similarity of the two faces' embeddings (higher =
    more alike, at most 1), ``distance`` the Euclidean distance between the
    unit vectors (``sqrt(2 - 2 * score)``), ``same`` whether the score reaches
    the model's ``threshold``. When an image holds several faces, its largest
    face is compared and ``faces_a`` / ``faces_b`` say how many there were.
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


def compare_files(pipeline: FacePipeline, path_a, path_b, threshold: float | None = None, store=None) -> Comparison:
    """Compare the largest face in each image; raises EmbedkitError naming the file without a face.

    The same-person threshold is ``threshold`` if given, else the one for the
    pipeline's model and face setting (a calibration in the index metadata
    ``store``, the model's, the backbone's; see :mod:`embedkit.calibration`).
    """
    from embedkit.calibration import threshold_for

    results = list(pipeline.embed_files([path_a, path_b]))
    for result in results:
        if result.error:
            raise EmbedkitError(f"{result.path}: {result.error}")
        if not result.faces:
            raise EmbedkitError(f"{result.path}: no face found")
    a, b = results
    score = similarity(a.embeddings[0], b.embeddings[0])
    encoder = pipeline.encoder
    chosen = threshold_for(pipeline, store, threshold)
    comparison = Comparison(
        path_a=a.path, path_b=b.path, score=score, distance=math.sqrt(max(0.0, 2.0 - 2.0 * score)),
        same=score >= chosen.value, threshold=chosen.value, calibrated=chosen.calibrated,
        model_id=encoder.model_id, faces_a=len(a.faces), faces_b=len(b.faces),
        box_a=[round(v, 1) for v in a.faces[0].box], box_b=[round(v, 1) for v in b.faces[0].box],
    )
    place_among_strangers(comparison, reference_for(encoder, pipeline.extractor.describe()))
    return comparison


def place_among_strangers(comparison: Comparison, reference) -> None:
    """Fill in where ``comparison.score`` sits among the reference's impostor pairs (if there is one)."""
    if reference is None:
        return
    below = reference.fraction_below(comparison.score)
    comparison.strangers_below = round(below, 6)
    comparison.strangers = phrase(below, reference.n_pairs)
    note = "; made with other face settings than this comparison's" if reference.about.get("face_setting_differs") else ""
    comparison.reference = reference.describe() + note
