"""Nearest-face queries: who in the index looks like the faces in this image?"""

from __future__ import annotations

from typing import Iterable, Iterator

from embedkit.errors import EmbedkitError
from embedkit.index import FaceIndex
from embedkit.pipeline import FacePipeline

# With ``all_matches``, the search widens from this many neighbours until the last is below the threshold.
FIRST_K = 64


def query_image(index: FaceIndex, pipeline: FacePipeline, path, k: int = 5, all_matches: bool = False,
                threshold: float | None = None, include_low_quality: bool = False) -> list[dict]:
    """For each face in the image at ``path`` (largest first), its ``k`` nearest stored faces.

    Returns a list of query faces, each ``{"face_no", "box", "matches": [...],
    "person", "unknown", "threshold", "calibrated"}`` with matches as
    :meth:`FaceIndex.search` gives them plus ``same`` (the score reaches the
    same-person threshold for the index's model and face setting, or
    ``threshold``) and ``person`` (``{"person_id", "name"}`` of the person the
    stored face belongs to, or None). With ``all_matches``, ``matches`` holds
    every stored face at or above the threshold instead of a top ``k``,
    leaving out faces below the index's quality settings unless
    ``include_low_quality``. A query face's ``person`` is that of its best
    ``same`` match that belongs to someone; ``unknown`` is True when no stored
    face is ``same``. Raises EmbedkitError if the image cannot be read; an
    image with no face gives [].
    """
    answer = next(query_images(index, pipeline, [path], k, all_matches, threshold, include_low_quality))
    if answer["error"]:
        raise EmbedkitError(f"{answer['path']}: {answer['error']}")
    return answer["faces"]


def query_images(index: FaceIndex, pipeline: FacePipeline, paths: Iterable, k: int = 5, all_matches: bool = False,
                 threshold: float | None = None, include_low_quality: bool = False) -> Iterator[dict]:
    """:func:`query_image` for many images in one run: ``{"path", "error", "faces"}`` per path, in order.

    An unreadable image gives its reason in ``error`` (``faces == []``) and the rest go on.
    """
    from embedkit.calibration import threshold_for

    index.check_compatible(pipeline)
    chosen = threshold_for(pipeline, index.store, threshold)
    for result in pipeline.embed_files(paths):
        faces = _answer(index, result, k, all_matches, chosen, include_low_quality) if result.faces else []
        yield {"path": result.path, "error": result.error, "faces": faces}


def _search_all(index: FaceIndex, embeddings, threshold: float, include_low_quality: bool) -> list[list[dict]]:
    """Every stored face at or above ``threshold`` for each query embedding (widening k until it is reached)."""
    from embedkit.people import get_quality

    total = index.store.counts()["faces"]
    k = min(FIRST_K, max(total, 1))
    while True:
        matches = index.search(embeddings, k)
        if k >= total or all(not m or m[-1]["score"] < threshold for m in matches):
            break
        k = min(total, k * 4)
    quality = get_quality(index.store)
    return [[m for m in face if m["score"] >= threshold
             and (include_low_quality or quality.good(m["box"][2], m["box"][3], m["detector_score"]))]
            for face in matches]


def _answer(index: FaceIndex, result, k: int, all_matches: bool, chosen, include_low_quality: bool) -> list[dict]:
    from embedkit.people import persons_of

    if all_matches:
        matches = _search_all(index, result.embeddings, chosen.value, include_low_quality)
    else:
        matches = index.search(result.embeddings, k)
    owners = persons_of(index, {m["face_id"] for face in matches for m in face})
    faces = []
    for face, face_matches in zip(result.faces, matches):
        person = None
        for match in face_matches:
            match["same"] = match["score"] >= chosen.value
            match["person"] = owners.get(match["face_id"])
            if person is None and match["same"] and match["person"]:
                person = match["person"]
        faces.append({"face_no": face.face_no, "box": [round(v, 1) for v in face.box], "matches": face_matches,
                      "person": person, "unknown": not any(m["same"] for m in face_matches),
                      "threshold": round(chosen.value, 4), "calibrated": chosen.calibrated})
    return faces
