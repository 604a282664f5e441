"""Nearest-face queries: who in the index looks like the faces in this image?"""

from __future__ import annotations

from embedkit.errors import EmbedkitError
from embedkit.index import FaceIndex
from embedkit.pipeline import FacePipeline


def query_image(index: FaceIndex, pipeline: FacePipeline, path, k: int = 5) -> list[dict]:
    """For each face in the image at ``path`` (largest first), its ``k`` nearest stored faces.

    Returns a list of query faces, each ``{"face_no", "box", "matches": [...]}``
    with matches as :meth:`FaceIndex.search` gives them. Raises
    EmbedkitError if the image cannot be read; an image with no face gives [].
    """
    index.check_compatible(pipeline)
    result = pipeline.embed_file(path)
    if result.error:
        raise EmbedkitError(f"{result.path}: {result.error}")
    if not result.faces:
        return []
    matches = index.search(result.embeddings, k)
    return [
        {"face_no": face.face_no, "box": [round(v, 1) for v in face.box], "matches": face_matches}
        for face, face_matches in zip(result.faces, matches)
    ]
