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
        crop: aligned ``(size, size, 3)`` uint8 RGB crop (the encoder's first framing).
        image_size: ``(width, height)`` of the image it was found in.
        extra_crops: crops in the encoder's other framings, for encoders that
            combine networks trained on different framings (``facenet+sface``).
    """

    path: str
    face_no: int
    box: tuple[float, float, float, float]
    score: float
    crop: np.ndarray
    image_size: tuple[int, int] | None = None
    extra_crops: tuple[np.ndarray, ...] = ()


# A framing: the side of the square crop and its alignment (see embedkit.faces.align).
Framing = tuple[int, str]


def framings_of(encoder) -> tuple[Framing, ...]:
    """The crops an encoder takes: its ``framings``, or one crop of its input size and alignment."""
    framings = getattr(encoder, "framings", None)
    if framings:
        return tuple((int(size), str(alignment)) for size, alignment in framings)
    return ((encoder.input_size, getattr(encoder, "alignment", "facenet")),)


def stack_crops(faces: list[Face]):
    """The faces' crops as an encoder takes them: one ``(N, s, s, 3)`` array, or a tuple with one per framing."""
    first = np.stack([face.crop for face in faces])
    if not faces[0].extra_crops:
        return first
    extra = [np.stack([face.extra_crops[k] for face in faces]) for k in range(len(faces[0].extra_crops))]
    return (first, *extra)


def blank_crops(framings: tuple[Framing, ...], count: int):
    """``count`` black crops in each framing, shaped as :func:`stack_crops` gives them (for warming up)."""
    arrays = tuple(np.zeros((count, size, size, 3), np.uint8) for size, _ in framings)
    return arrays[0] if len(arrays) == 1 else arrays


def _aligned(image: np.ndarray, detection, size: int, alignment: str) -> np.ndarray:
    """The face aligned by its landmarks, or framed by its box when the landmarks are degenerate."""
    try:
        return align_face(image, detection.landmarks, size, alignment)
    except ValueError:
        return box_crop(image, detection.box, size)


class FaceExtractor:
    """Finds and aligns every face in an image for a backbone of input ``size``.

    Args:
        size: side of the square crops to make.
        detector: a detector name (``yunet``, ``mtcnn``) or None for images
            that are already face crops (AT&T, LFW): then the whole image, or
            its central ``center_crop`` fraction, is the one face.
        center_crop: fraction of the shorter side kept without detection.
        max_faces: keep at most this many faces per image, largest first.
        alignment: the crop framing the encoder was trained on: ``facenet``
            (default) or ``arcface`` (see :mod:`embedkit.faces.align`).
        extra_framings: further ``(size, alignment)`` crops of every face,
            for encoders that take several (kept in :attr:`Face.extra_crops`).
    """

    def __init__(self, size: int, detector: str | None = DEFAULT_DETECTOR, center_crop: float = 1.0,
                 max_faces: int | None = None, alignment: str = "facenet",
                 extra_framings: tuple[Framing, ...] = ()):
        if not 0.05 <= center_crop <= 1.0:
            raise ValueError(f"center_crop must be in (0.05, 1], got {center_crop}")
        self.size = size
        self.detector_name = detector
        self.detector = get_detector(detector) if detector else None
        self.center_crop = center_crop
        self.max_faces = max_faces
        self.alignment = alignment
        self.extra_framings = tuple((int(size), str(name)) for size, name in extra_framings)

    @classmethod
    def for_encoder(cls, encoder, detector: str | None = DEFAULT_DETECTOR, center_crop: float = 1.0,
                    max_faces: int | None = None) -> "FaceExtractor":
        """Crops of the sizes and framings ``encoder`` wants."""
        (size, alignment), *extra = framings_of(encoder)
        return cls(size, detector, center_crop, max_faces, alignment, tuple(extra))

    @property
    def framings(self) -> tuple[Framing, ...]:
        return ((self.size, self.alignment), *self.extra_framings)

    def describe(self) -> dict:
        """What this extractor does, for metadata (the default alignment is left out, as before it existed)."""
        described = {"detector": self.detector_name, "center_crop": self.center_crop, "size": self.size}
        if self.alignment != "facenet":
            described["alignment"] = self.alignment
        if self.extra_framings:
            described["extra_framings"] = [list(framing) for framing in self.extra_framings]
        return described

    def from_image(self, image: np.ndarray, path: str = "") -> list[Face]:
        if self.detector is None:
            height, width = image.shape[:2]
            side = min(height, width) * self.center_crop
            box = ((width - side) / 2, (height - side) / 2, side, side)
            crop, *extra = (center_crop(image, size, self.center_crop) for size, _ in self.framings)
            return [Face(path, 0, box, 1.0, crop, (width, height), tuple(extra))]
        faces = []
        size = (image.shape[1], image.shape[0])
        for number, detection in enumerate(self.detector.detect(image)[: self.max_faces]):
            crop, *extra = (_aligned(image, detection, side, alignment) for side, alignment in self.framings)
            faces.append(Face(path, number, detection.box, detection.score, crop, size, tuple(extra)))
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
