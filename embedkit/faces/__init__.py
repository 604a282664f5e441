"""Images in, aligned face crops out: reading, detection, alignment."""

from embedkit.faces.detect import DEFAULT_DETECTOR, Detection, available_detectors, get_detector
from embedkit.faces.extract import Face, FaceExtractor
from embedkit.faces.io import is_image_path, read_image

__all__ = [
    "DEFAULT_DETECTOR",
    "Detection",
    "Face",
    "FaceExtractor",
    "available_detectors",
    "get_detector",
    "is_image_path",
    "read_image",
]
