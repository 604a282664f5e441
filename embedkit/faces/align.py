"""Turning a detected face into the square crop a backbone sees.

FaceNet was trained on MTCNN boxes widened by a margin and resized to a
square, which stretches faces sideways. :func:`align_face` reproduces that
framing from the five landmarks with a similarity transform (so a tilted
head is turned upright) followed by the same average sideways stretch.
"""

from __future__ import annotations

import numpy as np

# Mean landmark positions in 160x160 FaceNet training-style crops (MTCNN box
# plus a 16-pixel margin, resized to a square) over 300 LFW photos.
TEMPLATE_SIZE = 160
FACE_TEMPLATE = np.array(
    [[53.88, 65.45], [107.12, 64.22], [80.57, 90.00], [58.27, 112.51], [105.24, 111.57]], dtype=np.float64
)
# Mean width-to-height stretch of those crops (box with margin, 123.5 x 155.5
# pixels on average, resized to a square).
TEMPLATE_STRETCH = 1.26


# The five-point template of ArcFace-style recognisers (SFace): 112x112 crops,
# no stretch (Deng et al., InsightFace). Same landmark order as above.
ARCFACE_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ALIGNMENTS = ("facenet", "arcface")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation, uniform scale and shift mapping ``src`` onto ``dst`` (2x3)."""
    import cv2

    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(src, np.float32), np.asarray(dst, np.float32), method=cv2.LMEDS
    )
    if matrix is None:
        raise ValueError("landmarks are degenerate")
    return matrix


def alignment_matrix(landmarks: np.ndarray, size: int, alignment: str = "facenet") -> np.ndarray:
    """The 2x3 affine map from image pixels to a ``size`` x ``size`` aligned crop.

    ``alignment``: ``facenet`` (the stretched MTCNN-style framing above) or
    ``arcface`` (the ArcFace template, a plain similarity transform).
    """
    if alignment == "arcface":
        return similarity_transform(landmarks, ARCFACE_TEMPLATE * (size / ARCFACE_SIZE))
    if alignment != "facenet":
        raise ValueError(f"unknown alignment {alignment!r}; expected one of {', '.join(ALIGNMENTS)}")
    scale = size / TEMPLATE_SIZE
    unstretched = FACE_TEMPLATE * [scale / TEMPLATE_STRETCH, scale]
    similarity = similarity_transform(landmarks, unstretched)
    stretch = np.diag([TEMPLATE_STRETCH, 1.0])
    return stretch @ similarity


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, alignment: str = "facenet") -> np.ndarray:
    """An upright ``(size, size, 3)`` uint8 crop of the face with these landmarks."""
    import cv2

    matrix = alignment_matrix(landmarks, size, alignment)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def box_crop(image: np.ndarray, box, size: int, margin: float = 0.15) -> np.ndarray:
    """A square crop of ``box`` widened by ``margin`` of its size (fallback framing)."""
    import cv2

    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    s = size / side
    matrix = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], dtype=np.float64)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def center_crop(image: np.ndarray, size: int, fraction: float = 1.0) -> np.ndarray:
    """The central square (``fraction`` of the shorter side) resized to ``size``."""
    import cv2

    height, width = image.shape[:2]
    side = max(1, round(min(height, width) * fraction))
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top:top + side, left:left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)
