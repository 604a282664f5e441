"""From an image file to aligned face crops: read, detect, align."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedkit.faces.align import align_face, box_crop, center_crop
from embedkit.faces.detect import DEFAULT_DETECTOR, get_detector
from embedkit.errors import ImageError
from embedkit.faces.io import read_image

logger = logging.getLogger(__name__)


def default_workers() -> int:
    """Threads for reading and detecting: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class Face:
    """One face ready for an encoder.

    Attributes:
        path: the image file it came from ("" for an in-memory image).
        face_no: its rank in the image, 0 = the largest face.
        box: ``(x, y, width, height)`` in the image's upright pixels.
        score: detector confidence (1.0 without detection).
        crop: aligned ``(size, size, 3)`` uint8 RGB crop.
        image_size: ``(width, height)`` of the image it was found in.
    """

    path: str
    face_no: int
    box: tuple[float, float, float, float]
    score: float
    crop: np.ndarray
    image_size: tuple[int, int] | None = None


def main_face(faces: list[Face]) -> int:
    """Index of a photo's main face: the most central of the faces at least half as large as the largest.

    Bystanders are smaller or off-centre; without the image size, the largest face.
    """
    if len(faces) <= 1 or faces[0].image_size is None:
        return 0
    width, height = faces[0].image_size
    largest = max(f.box[2] * f.box[3] for f in faces)

    def off_centre(face: Face) -> float:
        x, y, w, h = face.box
        return ((x + w / 2 - width / 2) / width) ** 2 + ((y + h / 2 - height / 2) / height) ** 2

    big = [i for i, f in enumerate(faces) if f.box[2] * f.box[3] >= 0.5 * largest]
    return min(big, key=lambda i: off_centre(faces[i]))


class FaceExtractor:
    """Finds and aligns every face in an image for a backbone of input ``size``.

    Args:
        size: side of the square crops to make.
        detector: a detector name (``yunet``, ``mtcnn``) or None for images
            that are already face crops (AT&T, LFW): then the whole image, or
            its central ``center_crop`` fraction, is the one face.
        center_crop: fraction of the shorter side kept without detection.
        max_faces: keep at most this many faces per image, largest first.
    """

    def __init__(self, size: int, detector: str | None = DEFAULT_DETECTOR, center_crop: float = 1.0,
                 max_faces: int | None = None):
        if not 0.05 <= center_crop <= 1.0:
            raise ValueError(f"center_crop must be in (0.05, 1], got {center_crop}")
        self.size = size
        self.detector_name = detector
        self.detector = get_detector(detector) if detector else None
        self.center_crop = center_crop
        self.max_faces = max_faces

    def describe(self) -> dict:
        """What this extractor does, for metadata."""
        return {"detector": self.detector_name, "center_crop": self.center_crop, "size": self.size}

    def from_image(self, image: np.ndarray, path: str = "") -> list[Face]:
        if self.detector is None:
            height, width = image.shape[:2]
            side = min(height, width) * self.center_crop
            box = ((width - side) / 2, (height - side) / 2, side, side)
            return [Face(path, 0, box, 1.0, center_crop(image, self.size, self.center_crop), (width, height))]
        faces = []
        size = (image.shape[1], image.shape[0])
        for number, detection in enumerate(self.detector.detect(image)[: self.max_faces]):
            try:
                crop = align_face(image, detection.landmarks, self.size)
            except ValueError:
                crop = box_crop(image, detection.box, self.size)
            faces.append(Face(path, number, detection.box, detection.score, crop, size))
        return faces

    def from_file(self, path: str | Path) -> list[Face]:
        """Faces in the image at ``path``; raises ImageError if it cannot be read."""
        return self.from_image(read_image(path), str(path))

    def try_file(self, path: str | Path) -> tuple[list[Face], str | None]:
        """``(faces, None)``, or ``([], reason)`` if the file cannot be used.

        A detector failure on one odd image is a reason too, so long runs go on.
        """
        try:
            return self.from_file(path), None
        except ImageError as exc:
            return [], exc.reason
        except Exception as exc:
            logger.debug("failed on %s", path, exc_info=True)
            return [], f"{exc.__class__.__name__}: {exc}"
