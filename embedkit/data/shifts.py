"""Domain shifts of aligned face crops: what user photos do to faces that pretraining data did not.

Each shift is a pure, seeded function of a batch of aligned ``(N, S, S, 3)``
uint8 crops (the face already found and aligned on the original photo), so
the same faces can be scored clean and shifted, and the training faces can be
shifted the same way (augmentation) without detecting again:

* ``lowres``: the crop brought down to ``24 x 24`` pixels (area averaging, as
  a camera sensor does) and back up to ``S`` (bilinear), the way CCTV frames
  and group photos give faces;
* ``mask``: the lower face, from just below the eyes over the nose, mouth and
  chin, covered by a flat, slightly shaded surgical-mask shape of a random
  colour (light blue, white, grey or black), the occlusion users meet since 2020.

Positions follow the alignment template of :mod:`embedkit.faces.align`
(eyes at 41% of the crop's height, nose tip at 56%, mouth at 70%).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["SHIFTS", "Shift", "apply_shift", "lowres", "mask"]

LOWRES_SIDE = 24
# Mask colours (RGB): light blue, white, grey, black.
MASK_COLOURS = np.array([[150, 190, 220], [235, 235, 235], [140, 140, 145], [35, 35, 40]], dtype=np.float32)


def _check(crops: np.ndarray) -> np.ndarray:
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"expected uint8 crops of shape (N, S, S, 3), got {crops.dtype} {crops.shape}")
    return crops


def lowres(crops: np.ndarray, seed: int = 0, side: int = LOWRES_SIDE) -> np.ndarray:
    """Each crop down to ``side`` x ``side`` pixels and back to its size (``seed`` unused: deterministic)."""
    import cv2

    crops = _check(crops)
    size = crops.shape[1]
    out = np.empty_like(crops)
    for i, crop in enumerate(crops):
        small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def _mask_polygon(size: int, rng: np.random.Generator) -> np.ndarray:
    """Outline of a mask over the lower face, jittered a little per face."""
    top = (0.52 + rng.uniform(-0.02, 0.02)) * size  # across the nose, below the eyes
    left, right = (0.12 + rng.uniform(-0.02, 0.02)) * size, (0.88 + rng.uniform(-0.02, 0.02)) * size
    chin = (0.97 + rng.uniform(-0.03, 0.03)) * size
    mid = size / 2
    return np.array([[left, top + 0.04 * size], [mid, top - 0.02 * size], [right, top + 0.04 * size],
                     [right - 0.03 * size, 0.80 * size], [mid + 0.18 * size, chin], [mid - 0.18 * size, chin],
                     [left + 0.03 * size, 0.80 * size]], dtype=np.int32)


def mask(crops: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each crop with its lower face covered; colour and outline drawn per face from ``seed``."""
    import cv2

    crops = _check(crops)
    size = crops.shape[1]
    out = crops.copy()
    children = np.random.SeedSequence(seed).spawn(len(crops))
    shade = np.linspace(1.0, 0.85, size, dtype=np.float32)[:, None, None]  # a little darker towards the chin
    for i, child in enumerate(children):
        rng = np.random.default_rng(child)
        area = np.zeros((size, size), dtype=np.uint8)
        cv2.fillPoly(area, [_mask_polygon(size, rng)], 1)
        colour = MASK_COLOURS[rng.integers(len(MASK_COLOURS))] * rng.uniform(0.9, 1.1)
        cloth = np.clip(colour[None, None, :] * shade, 0, 255).astype(np.uint8)
        cloth = np.broadcast_to(cloth, (size, size, 3))
        out[i][area.astype(bool)] = cloth[area.astype(bool)]
    return out


@dataclass(frozen=True)
class Shift:
    """A named shift and what it does, for reports."""

    name: str
    function: Callable[..., np.ndarray]
    description: str


SHIFTS = {
    "lowres": Shift("lowres", lowres, f"aligned face brought down to {LOWRES_SIDE}x{LOWRES_SIDE} px and back up"),
    "mask": Shift("mask", mask, "lower face (nose, mouth, chin) covered by a surgical-mask shape"),
}


def apply_shift(name: str, crops: np.ndarray, seed: int = 0) -> np.ndarray:
    """``crops`` under the shift called ``name`` (a ValueError lists the known names)."""
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; known shifts: {', '.join(sorted(SHIFTS))}")
    return SHIFTS[name].function(crops, seed=seed)
