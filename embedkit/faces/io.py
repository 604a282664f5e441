"""Reading image files into uint8 RGB arrays, or a clear reason why not."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np

from embedkit.errors import ImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pbm", ".bmp", ".webp", ".tif", ".tiff", ".gif",
                  ".avif", ".jp2", ".heic", ".heif", ".jxl")
# Photo formats the installed Pillow may not decode: they are still picked up
# from folders, so that skipping them is reported rather than silent.
UNSUPPORTED_HINT = {".heic": "HEIC", ".heif": "HEIF", ".jxl": "JPEG XL", ".avif": "AVIF"}

# Larger declared sizes are refused before decoding (decompression bombs).
# No camera makes more: the largest sensors are about 200 megapixels (phones)
# and 150 (medium format); pixel-shift modes reach about 400.
MAX_PIXELS = 500_000_000
# Formats that cannot be decoded at a reduced scale are decoded whole: up to
# this size (3 bytes a pixel: 750 MB at most), which still covers every
# camera's single shot.
MAX_FULL_DECODE_PIXELS = 250_000_000
# Smaller images cannot hold a face worth embedding.
MIN_SIDE = 16
# Large photos are decoded at a reduced scale (JPEG) or reduced right after
# decoding (other formats) down to about this size, which is far faster and
# still leaves faces larger than any backbone's input.
DRAFT_SIDE = 1600


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to an upright ``(H, W, 3)`` uint8 RGB array.

    EXIF orientation is applied; grey, 16-bit, palette, CMYK and RGBA images
    are converted. Raises :class:`ImageError` naming the file and the reason.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise ImageError(path, "is a directory, not an image file")
    try:
        st = path.stat()
    except OSError as exc:
        raise ImageError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):  # a named pipe would block the read forever
        raise ImageError(path, "not a regular file (a pipe, device or socket)")
    if st.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Sizes are checked below against embedkit's own limits; Pillow's
            # default limit (89 megapixels) would refuse legal photos.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            _allow_camera_sizes(Image)
            with Image.open(path) as img:
                _check_declared_size(path, img)
                img = _reduced(img)
                img = ImageOps.exif_transpose(img)
                array = _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        kind = UNSUPPORTED_HINT.get(path.suffix.lower())
        if kind:
            raise ImageError(path, f"{kind} images cannot be read by this installation (convert to JPEG or PNG)") from None
        raise ImageError(path, "not an image file, or an image format that cannot be read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(path, "declared size is too large (possible decompression bomb)") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(path, f"corrupt or truncated image ({exc})") from None
    return array


def _allow_camera_sizes(Image) -> None:
    """Raise Pillow's decompression-bomb limit to embedkit's (never lower it)."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def _check_declared_size(path: Path, img) -> None:
    width, height = img.size
    pixels = width * height
    if pixels > MAX_PIXELS or (pixels > MAX_FULL_DECODE_PIXELS and img.format != "JPEG"):
        raise ImageError(path, f"declared size {width}x{height} is too large (possible decompression bomb; "
                               f"no camera makes {pixels / 1e6:.0f} megapixels)")
    if min(width, height) < MIN_SIDE:
        raise ImageError(path, f"image is too small ({width}x{height}) to hold a face")


def _reduced(img):
    """``img`` decoded at about ``DRAFT_SIDE`` pixels a side when it is much larger:
    JPEGs decode at 1/2, 1/4 or 1/8 scale directly; other formats are reduced
    by a whole factor after decoding."""
    if max(img.size) <= 2 * DRAFT_SIDE:
        return img
    if img.format == "JPEG":
        img.draft("RGB", (DRAFT_SIDE, DRAFT_SIDE))
        if max(img.size) <= 2 * DRAFT_SIDE:
            return img
    factor = max(img.size) // DRAFT_SIDE
    if img.mode.startswith("I;16"):
        img = img.convert("I")
    elif img.mode not in ("RGB", "RGBA", "L", "LA", "I", "F", "RGBX", "CMYK"):
        img = img.convert("RGBA" if "transparency" in img.info or img.mode.endswith("A") else "RGB")
    exif = img.getexif()
    reduced = img.reduce(factor)
    if exif:
        reduced.info["exif"] = exif.tobytes()  # keep the orientation for exif_transpose
    return reduced


def _to_rgb(img) -> np.ndarray:
    """Any Pillow mode to uint8 RGB (transparency over white)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        data = np.asarray(img, dtype=np.float64)
        top = float(data.max()) or 1.0
        scale = 255.0 / (65535.0 if top > 255 else max(top, 255.0))
        grey = np.clip(data * scale, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    array = np.asarray(img, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"unexpected image shape {array.shape}")
    return np.ascontiguousarray(array)
