"""Nearest-face queries: who in the index looks like the faces in this image?"""

from __future__ import annotations

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
    from embedkit.calibration import threshold_for
    from embedkit.people import get_quality, persons_of

    index.check_compatible(pipeline)
    chosen = threshold_for(pipeline, index.store, threshold)
    result = pipeline.embed_file(path)
    if result.error:
        raise EmbedkitError(f"{result.path}: {result.error}")
    if not result.faces:
        return []
    if all_matches:
        total = index.store.counts()["faces"]
        k = min(FIRST_K, max(total, 1))
        while True:
            matches = index.search(result.embeddings, k)
            if k >= total or all(not m or m[-1]["score"] < chosen.value for m in matches):
                break
            k = min(total, k * 4)
        quality = get_quality(index.store)
        matches = [[m for m in face if m["score"] >= chosen.value
                    and (include_low_quality or quality.good(m["box"][2], m["box"][3], m["detector_score"]))]
                   for face in matches]
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
