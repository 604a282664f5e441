"""How a backbone wants its pixels: input size, colour, scaling.

A :class:`Preprocessing` turns a batch of aligned uint8 RGB face crops into
the float tensor a backbone was trained on. It is plain data, so it is saved
in a model folder's config and rebuilt from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SCALINGS = ("standardize", "fixed", "caffe", "unit", "raw")


@dataclass(frozen=True)
class Preprocessing:
    """Pixel preparation for one backbone.

    Attributes:
        size: side of the square input, in pixels.
        scaling: ``standardize`` (per image: zero mean, unit variance; FaceNet
            2017), ``fixed`` ((x - 127.5) / 128; FaceNet 2018), ``caffe``
            (RGB to BGR, ImageNet mean subtracted; VGG16), ``unit`` (x / 255)
            or ``raw`` (0-255 as float; SFace).
        grayscale: feed one grey channel repeated three times.
    """

    size: int
    scaling: str
    grayscale: bool = False

    def __post_init__(self):
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; expected one of {', '.join(SCALINGS)}")
        if self.size < 8:
            raise ValueError(f"input size {self.size} is too small")

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """Scale a uint8 batch ``(N, size, size, 3)`` to float32."""
        x = np.asarray(faces, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"expected faces of shape (N, {self.size}, {self.size}, 3), got {x.shape}")
        if self.grayscale:
            grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            x = np.repeat(grey[..., None], 3, axis=-1)
        if self.scaling == "standardize":
            mean = x.mean(axis=(1, 2, 3), keepdims=True)
            std = x.std(axis=(1, 2, 3), keepdims=True)
            floor = np.float32(1.0 / np.sqrt(x[0].size))
            return (x - mean) / np.maximum(std, floor)
        if self.scaling == "fixed":
            return (x - 127.5) / 128.0
        if self.scaling == "caffe":
            return x[..., ::-1] - np.array([103.939, 116.779, 123.68], dtype=np.float32)
        if self.scaling == "raw":
            return x
        return x / 255.0

    def get_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "Preprocessing":
        return cls(**config)
