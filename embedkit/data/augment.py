"""Seeded augmentation of aligned uint8 face crops (numpy and OpenCV).

Used to make "same person" pairs from one photo per person, as the original
project did with 8 augmented copies of every UTKFace photo, and to enlarge
small identity sets. Each copy gets a random crop (zoom), a horizontal flip,
a small rotation, brightness and contrast changes and, sometimes, a blur.
The same seed always gives the same copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Augmentation", "augment_crop", "augment_copies"]


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes; each is drawn uniformly per copy."""

    min_scale: float = 0.85  # side of the random crop, as a fraction of the face
    max_rotation: float = 10.0  # degrees, either way
    flip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.2  # added, as a fraction of 255, either way
    contrast: float = 0.25  # multiplied around the mean: 1 +- contrast
    blur: float = 0.3  # probability of a Gaussian blur (sigma 0.5 to 1.2)


def augment_crop(crop: np.ndarray, rng: np.random.Generator, spec: Augmentation = Augmentation()) -> np.ndarray:
    """One augmented copy of a ``(H, W, 3)`` uint8 crop, same shape and dtype."""
    import cv2

    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.dtype != np.uint8:
        raise ValueError(f"expected a (H, W, C) uint8 crop, got {crop.dtype} {crop.shape}")
    height, width = crop.shape[:2]
    scale = rng.uniform(spec.min_scale, 1.0)
    angle = rng.uniform(-spec.max_rotation, spec.max_rotation)
    # Crop of side `scale` at a random offset, rotated about its centre, resized back.
    slack_x, slack_y = (1 - scale) * width, (1 - scale) * height
    cx = width / 2 + rng.uniform(-slack_x, slack_x) / 2
    cy = height / 2 + rng.uniform(-slack_y, slack_y) / 2
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0 / scale)
    matrix[:, 2] += (width / 2 - cx, height / 2 - cy)
    out = cv2.warpAffine(crop, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < spec.flip:
        out = out[:, ::-1]
    x = out.astype(np.float32)
    contrast = rng.uniform(1 - spec.contrast, 1 + spec.contrast)
    brightness = rng.uniform(-spec.brightness, spec.brightness) * 255
    x = (x - x.mean()) * contrast + x.mean() + brightness
    if rng.random() < spec.blur:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.2))
    return np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(crop.shape))


def augment_copies(crops: np.ndarray, copies: int, seed: int,
                   spec: Augmentation = Augmentation()) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` augmented copies of every crop in ``(N, H, W, 3)``.

    Returns ``(augmented, source)``: ``(N * copies, H, W, 3)`` uint8 crops and,
    for each, the index of the crop it came from. Deterministic in ``seed``.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4:
        raise ValueError(f"expected crops of shape (N, H, W, C), got {crops.shape}")
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    source = np.repeat(np.arange(len(crops), dtype=np.int64), copies)
    out = np.empty((len(source),) + crops.shape[1:], dtype=np.uint8)
    # One child generator per source crop: a crop's copies do not depend on the others.
    children = np.random.SeedSequence(seed).spawn(len(crops))
    for i, child in enumerate(children):
        rng = np.random.default_rng(child)
        for k in range(copies):
            out[i * copies + k] = augment_crop(crops[i], rng, spec)
    return out, source
