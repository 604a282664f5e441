"""Which face of a photo is its subject, and which is its main face.

:func:`subject_face`, the one rule ``compare``, ``evaluate`` and ``finetune`` share:

A photo may show several faces; the labelled person (LFW, a user's identity
folders) or the person being compared is taken to be the face whose box
centre is nearest the image centre. Photos are framed on their subject, and
the largest face is often someone else (a person nearer the camera at the
edge of a group photo). With one face, that face; when the image size
cannot be read from the file header, the largest (the detector's first).

:func:`main_face`, the rule of the index (``index --labels``, people): the
most central of the faces at least half as large as the largest. A label
names one face of a photo that may hold a crowd, so small bystanders are
never labelled even when one stands nearer the centre; ``compare`` is given
the photo of one person and keeps the plain centre rule its LFW figures
were measured with.
"""

from __future__ import annotations

import numpy as np

__all__ = ["subject_face", "main_face", "image_size"]


def image_size(path: str) -> tuple[int, int] | None:
    """Upright ``(width, height)`` from the file header, without decoding."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Exception:  # the pipeline already read it; a header quirk only loses the centre rule
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def subject_face(faces: list, path: str) -> int:
    """Index in ``faces`` (largest first) of the face whose box centre is nearest the image centre."""
    if len(faces) == 1:
        return 0
    # The extractor records the size of the image the boxes were found in; the file's
    # header is read again only for faces made without it.
    size = getattr(faces[0], "image_size", None) or image_size(path)
    if size is None:
        return 0  # largest first
    cx, cy = size[0] / 2, size[1] / 2
    distances = [(f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2 for f in faces]
    return int(np.argmin(distances))


def main_face(faces: list) -> int:
    """Index of a photo's main face: the most central of the faces at least half as large as the largest.

    Bystanders are smaller or off-centre; without the image size, the largest face.
    """
    if len(faces) <= 1 or faces[0].image_size is None:
        return 0
    width, height = faces[0].image_size
    largest = max(f.box[2] * f.box[3] for f in faces)

    def off_centre(face) -> float:
        x, y, w, h = face.box
        return ((x + w / 2 - width / 2) / width) ** 2 + ((y + h / 2 - height / 2) / height) ** 2

    big = [i for i, f in enumerate(faces) if f.box[2] * f.box[3] >= 0.5 * largest]
    return min(big, key=lambda i: off_centre(faces[i]))
