"""Face detectors chosen by name: ``yunet`` (default, OpenCV) and ``mtcnn``.

Every detector returns :class:`Detection` objects with a box and five
landmarks in the same order (the eye on the image's left first, then the
other eye, the nose tip, the mouth corner on the left, the one on the right),
largest face first.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from importlib import resources

import numpy as np

from embedkit.errors import UnknownNameError

logger = logging.getLogger(__name__)

YUNET_MODEL = "face_detection_yunet_2023mar_int8bq.onnx"


@dataclass(frozen=True)
class Detection:
    """One face found in an image.

    Attributes:
        box: ``(x, y, width, height)`` in pixels of the image given.
        landmarks: ``(5, 2)`` float32 points, in the order described above.
        score: the detector's confidence in [0, 1].
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float


_CREATE_LOCK = threading.Lock()


@contextlib.contextmanager
def opencv_log_level(level: int):
    """OpenCV's log level set to ``level`` for the block (never louder than it was)."""
    import cv2

    before = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(min(level, before))
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(before)


def _ordered_landmarks(points) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float32).reshape(5, 2)
    eyes = pts[:2][np.argsort(pts[:2, 0])]
    mouth = pts[3:][np.argsort(pts[3:, 0])]
    return np.concatenate([eyes, pts[2:3], mouth])


def _largest_first(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: d.box[2] * d.box[3], reverse=True)


class YuNetDetector:
    """OpenCV's YuNet (int8 ONNX model shipped with embedkit): about 3 ms a photo.

    Images are scaled so the longer side is at most ``max_side`` for
    detection; boxes and landmarks come back in the original pixels. Safe to
    call from several threads (one OpenCV detector per thread).
    """

    name = "yunet"

    def __init__(self, score_threshold: float = 0.7, nms_threshold: float = 0.3, max_side: int = 640,
                 min_face: int = 20):
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.min_face = min_face
        self._local = threading.local()

    def _detector(self, width: int, height: int):
        import cv2

        det = getattr(self._local, "detector", None)
        if det is None:
            model = resources.files("embedkit.faces").joinpath("models", YUNET_MODEL)
            # OpenCV warns on every creation that its new graph engine ignores
            # the target; one warning per reader thread helps nobody.
            with _CREATE_LOCK, opencv_log_level(cv2.utils.logging.LOG_LEVEL_ERROR):
                det = cv2.FaceDetectorYN.create(
                    str(model), "", (width, height), self.score_threshold, self.nms_threshold, 5000
                )
            self._local.detector = det
        det.setInputSize((width, height))
        return det

    def detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        # YuNet misses faces that fill the whole frame (already-cropped faces):
        # a border gives it the context it was trained with.
        pad = max(bgr.shape[:2]) // 4
        bgr = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        h, w = bgr.shape[:2]
        _, faces = self._detector(w, h).detect(bgr)
        detections = []
        for row in faces if faces is not None else []:
            box = (row[:4] - [pad, pad, 0, 0]) / scale
            if min(box[2], box[3]) < self.min_face:
                continue
            points = (row[4:14].reshape(5, 2) - pad) / scale
            detections.append(Detection(tuple(float(v) for v in box), _ordered_landmarks(points), float(row[14])))
        return _largest_first(detections)


class MTCNNDetector:
    """MTCNN from the ``mtcnn`` package (TensorFlow; its weights ship in the package)."""

    name = "mtcnn"

    def __init__(self, score_threshold: float = 0.9, min_face: int = 20):
        self.score_threshold = score_threshold
        self.min_face = min_face
        self._mtcnn = None
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        with self._lock:
            if self._mtcnn is None:
                from mtcnn import MTCNN

                self._mtcnn = MTCNN(device="CPU:0")
            found = self._mtcnn.detect_faces(image, min_face_size=self.min_face)
        detections = []
        for face in found:
            if face["confidence"] < self.score_threshold:
                continue
            k = face["keypoints"]
            points = [k["left_eye"], k["right_eye"], k["nose"], k["mouth_left"], k["mouth_right"]]
            detections.append(
                Detection(tuple(float(v) for v in face["box"]), _ordered_landmarks(points), float(face["confidence"]))
            )
        return _largest_first(detections)


DETECTORS = {"yunet": YuNetDetector, "mtcnn": MTCNNDetector}
DEFAULT_DETECTOR = "yunet"


def available_detectors() -> list[str]:
    return sorted(DETECTORS)


def get_detector(name: str, **options):
    """A new detector registered as ``name``."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown detector {name!r}; valid detectors: {', '.join(available_detectors())}"
        ) from None
    return cls(**options)
