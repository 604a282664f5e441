"""Looking things up in an index by id: a photo (by content hash) and its faces, one face.

For pages that show what is stored: everything is found by id, and only
files the index holds are ever named.
"""

from __future__ import annotations

import re

from embedkit.index.face_index import FaceIndex

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_photo_id(value: str) -> bool:
    """A photo id is the lowercase hex SHA-256 of the image's content."""
    return bool(_SHA256.match(value))


def face(index: FaceIndex, face_id: int) -> dict | None:
    """One stored face as :meth:`MetadataStore.describe_faces` gives it, or None if there is none."""
    if face_id < 0:
        return None
    record = index.store.describe_faces([face_id]).get(face_id)
    return record if record and record["path"] else None


def photo(index: FaceIndex, photo_id: str) -> dict | None:
    """A stored photo: ``{"photo_id", "path", "paths", "label", "faces": [...]}``, or None.

    ``faces`` lists each face's ``face_id``, ``face_no``, ``box`` and
    ``detector_score``, largest (face_no 0) first.
    """
    if not is_photo_id(photo_id):
        return None
    db = index.store.db
    files = db.execute("SELECT path, label FROM files WHERE sha256 = ? ORDER BY path", (photo_id,)).fetchall()
    if not files:
        return None
    rows = db.execute("SELECT id, face_no, x, y, w, h, score FROM faces WHERE sha256 = ? ORDER BY face_no",
                      (photo_id,)).fetchall()
    faces = [{"face_id": fid, "face_no": no, "box": [round(x, 1), round(y, 1), round(w, 1), round(h, 1)],
              "detector_score": round(score, 4)} for fid, no, x, y, w, h, score in rows]
    return {"photo_id": photo_id, "path": files[0][0], "paths": [p for p, _ in files], "label": files[0][1],
            "faces": faces}

