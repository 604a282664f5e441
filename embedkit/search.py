"""Nearest-face queries: who in the index looks like the faces in this image?"""

from __future__ import annotations

from typing import Iterable, Iterator

from embedkit.errors import EmbedkitError
from embedkit.index import FaceIndex
from embedkit.pipeline import FacePipeline


def query_image(index: FaceIndex, pipeline: FacePipeline, path, k: int = 5) -> list[dict]:
    """For each face in the image at ``path`` (largest first), its ``k`` nearest stored faces.

    Returns a list of query faces, each ``{"face_no", "box", "matches": [...]}``
    with matches as :meth:`FaceIndex.search` gives them. Raises
    EmbedkitError if the image cannot be read; an image with no face gives [].
    """
    answer = next(query_images(index, pipeline, [path], k))
    if answer["error"]:
        raise EmbedkitError(f"{answer['path']}: {answer['error']}")
    return answer["faces"]


def query_images(index: FaceIndex, pipeline: FacePipeline, paths: Iterable, k: int = 5) -> Iterator[dict]:
    """:func:`query_image` for many images in one run: ``{"path", "error", "faces"}`` per path, in order.

    An unreadable image gives its reason in ``error`` (``faces == []``) and the rest go on.
    """
    index.check_compatible(pipeline)
    for result in pipeline.embed_files(paths):
        faces = []
        if result.faces:
            matches = index.search(result.embeddings, k)
            faces = [
                {"face_no": face.face_no, "box": [round(v, 1) for v in face.box], "matches": face_matches}
                for face, face_matches in zip(result.faces, matches)
            ]
        yield {"path": result.path, "error": result.error, "faces": faces}
