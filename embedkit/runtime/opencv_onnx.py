"""ONNX models run by OpenCV's DNN module (its classic engine: batches, and the int8 SFace model)."""

from __future__ import annotations

import numpy as np


class OpenCVModel:
    """An ONNX network: float32 NHWC batch in, ``(N, d)`` unit-length embeddings out."""

    def __init__(self, path):
        import cv2

        self._net = cv2.dnn.readNetFromONNX(str(path), engine=cv2.dnn.ENGINE_CLASSIC)

    def run(self, batch: np.ndarray) -> np.ndarray:
        blob = np.ascontiguousarray(np.asarray(batch, dtype=np.float32).transpose(0, 3, 1, 2))
        self._net.setInput(blob)
        out = np.asarray(self._net.forward(), dtype=np.float32).reshape(len(blob), -1)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
