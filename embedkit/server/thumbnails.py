"""Pictures for pages: face thumbnails and scaled photos as JPEG, cached.

Every image is decoded by :func:`embedkit.faces.io.read_image` (the same
safe reader ``index`` uses), so boxes, which are stored in the upright
decoded pixels, line up with what is shown. Cached files are named by the
image's content hash, never by its path.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from embedkit.faces.io import read_image

logger = logging.getLogger(__name__)

FACE_SIDE = 160
PHOTO_SIDE = 1024
# Context kept around a face box in its thumbnail, as a fraction of the box.
FACE_MARGIN = 0.25
JPEG_QUALITY = 85


def encode_jpeg(image: np.ndarray, max_side: int) -> tuple[bytes, tuple[int, int]]:
    """``image`` scaled down to at most ``max_side`` pixels, as JPEG bytes, and its original (width, height)."""
    from PIL import Image

    height, width = image.shape[:2]
    picture = Image.fromarray(image)
    if max(width, height) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), (width, height)


def face_crop(image: np.ndarray, box, side: int = FACE_SIDE) -> bytes:
    """A square JPEG around ``box`` (x, y, w, h) with some margin, ``side`` pixels wide."""
    from PIL import Image

    x, y, w, h = box
    half = max(w, h) * (0.5 + FACE_MARGIN)
    cx, cy = x + w / 2, y + h / 2
    height, width = image.shape[:2]
    left, top = int(max(0, cx - half)), int(max(0, cy - half))
    right, bottom = int(min(width, cx + half)), int(min(height, cy + half))
    if right - left < 2 or bottom - top < 2:
        left, top, right, bottom = 0, 0, width, height
    picture = Image.fromarray(image[top:bottom, left:right]).resize((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


class Thumbnails:
    """Face thumbnails and scaled photos of indexed images, made once and kept.

    Args:
        folder: where to keep them (made on first use); None keeps the most
            recent ``memory_items`` in memory instead.
    """

    def __init__(self, folder: str | os.PathLike | None = None, memory_items: int = 2048):
        self.folder = Path(folder) if folder is not None else None
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_items = memory_items
        self._lock = threading.Lock()

    def face(self, path: str, photo_id: str, face_no: int, box, side: int = FACE_SIDE) -> bytes:
        """The thumbnail of face ``face_no`` of the photo with content hash ``photo_id`` stored at ``path``."""
        key = f"{photo_id}-face{face_no}-{side}.jpg"
        cached = self._get(key)
        if cached is None:
            cached = face_crop(read_image(path), box, side)
            self._put(key, cached)
        return cached

    def photo(self, path: str, photo_id: str, max_side: int = PHOTO_SIDE) -> tuple[bytes, tuple[int, int]]:
        """The photo scaled to at most ``max_side``, and the decoded (width, height) its boxes refer to."""
        key = f"{photo_id}-photo-{max_side}"
        jpeg, size = self._get(key + ".jpg"), self._get(key + ".json")
        if jpeg is None or size is None:
            jpeg, dims = encode_jpeg(read_image(path), max_side)
            self._put(key + ".jpg", jpeg)
            self._put(key + ".json", json.dumps(list(dims)).encode())
            return jpeg, dims
        width, height = json.loads(size)
        return jpeg, (width, height)

    # -- the cache -------------------------------------------------------------------------------
    def _file(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def _get(self, key: str) -> bytes | None:
        if self.folder is None:
            with self._lock:
                value = self._memory.get(key)
                if value is not None:
                    self._memory.move_to_end(key)
                return value
        try:
            return self._file(key).read_bytes()
        except OSError:
            return None

    def _put(self, key: str, value: bytes) -> None:
        if self.folder is None:
            with self._lock:
                self._memory[key] = value
                while len(self._memory) > self._memory_items:
                    self._memory.popitem(last=False)
            return
        target = self._file(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, prefix=".tmp-") as tmp:
                tmp.write(value)
            os.replace(tmp.name, target)
        except OSError as exc:  # a full or read-only disk: serve it uncached
            logger.info("cannot cache thumbnail %s (%s)", key, exc)
