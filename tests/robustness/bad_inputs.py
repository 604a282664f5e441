"""Every awkward input a real photo folder holds, generated in a temporary folder.

Good-but-unusual images (CMYK, 16-bit, palette, RGBA, grey, EXIF-rotated,
many faces, odd names) are made from real LFW photos; broken ones (empty,
truncated, text, unsupported format, decompression bomb, 1x1, no face) are
made with Pillow and numpy. Nothing is written to the shared face data.

Each :class:`Case` says what every command should do with its file:

- ``skip``: the file is reported as ``PATH: REASON`` (``reason`` is a piece of
  that reason), counted as an error, and the rest goes on.
- ``faces``: the file is read and at least ``min_faces`` faces are found.
- ``no_face``: the file is read but holds no face.

Unreadable files: the tests run as root, for whom ``chmod 000`` does not stop
reads. The ``unreadable.jpg`` case is still made with mode 000, and
:func:`deny_reads` simulates the failing ``open`` (``PermissionError``) where
the process could read it anyway. A named pipe (``pipe.jpg``) is a second,
real (not simulated) unreadable file: opening it for reading would block.
"""

from __future__ import annotations

import builtins
import io
import os
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Four frontal LFW photos for the many-faces collage, and one for single faces.
LFW_FACE = "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
LFW_GROUP = ("George_W_Bush/George_W_Bush_0001.jpg", "Colin_Powell/Colin_Powell_0001.jpg",
             "Tony_Blair/Tony_Blair_0001.jpg", "Donald_Rumsfeld/Donald_Rumsfeld_0001.jpg")
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Case:
    name: str  # what the case is, as the issue lists it
    path: Path
    outcome: str  # "skip", "faces" or "no_face"
    reason: str = ""  # for "skip": a piece of the reason every command must give
    min_faces: int = 1

    @property
    def key(self) -> str:
        return str(self.path)


def lfw_image(lfw_dir: Path, relative: str = LFW_FACE) -> Image.Image:
    with Image.open(lfw_dir / relative) as img:
        return img.convert("RGB")


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    rows = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _heic_bytes() -> bytes:
    """The start of an HEIC file (ISO BMFF ``ftyp`` box), a format Pillow does not read without a plugin."""
    ftyp = b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + b"\x00" * 200


def exif_rotated(upright: Image.Image) -> Image.Image:
    """``upright`` stored turned a quarter left, tagged so that applying the tag turns it upright again.

    Orientation 6 means "rotate 90 degrees clockwise to display".
    """
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    stored.info["exif"] = exif.tobytes()
    return stored


def collage(images: list[Image.Image], columns: int = 2) -> Image.Image:
    width, height = images[0].size
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * width, rows * height), (128, 128, 128))
    for i, img in enumerate(images):
        sheet.paste(img.resize((width, height)), ((i % columns) * width, (i // columns) * height))
    return sheet


def make_bad_folder(folder: Path, lfw_dir: Path, att_dir: Path) -> list[Case]:
    """Write every case into ``folder`` (created); returns them in a fixed order."""
    folder.mkdir(parents=True, exist_ok=True)
    face = lfw_image(lfw_dir)
    cases: list[Case] = []

    def add(name, filename, outcome, reason="", min_faces=1) -> Path:
        path = folder / filename
        cases.append(Case(name, path, outcome, reason, min_faces))
        return path

    # Images that must be read, with their faces found.
    face.save(add("plain RGB JPEG (control)", "good.jpg", "faces"), quality=92)
    face.convert("CMYK").save(add("CMYK JPEG", "cmyk.jpg", "faces"), quality=92)
    grey16 = (np.asarray(face.convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(add("16-bit greyscale PNG", "grey16.png", "faces"))
    assert Image.open(folder / "grey16.png").mode.startswith("I")
    face.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(add("palette PNG", "palette.png", "faces"))
    rgba = face.convert("RGBA")
    alpha = np.full(face.size[::-1], 255, np.uint8)
    alpha[:20] = 0  # a transparent band at the top
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(add("RGBA PNG with transparency", "rgba.png", "faces"))
    face.convert("L").save(add("greyscale JPEG", "grey.jpg", "faces"), quality=92)
    rotated = exif_rotated(face)
    rotated.save(add("EXIF-rotated photo", "exif_rotated.jpg", "faces"), quality=95, exif=rotated.info["exif"])
    collage([lfw_image(lfw_dir, p) for p in LFW_GROUP]).save(
        add("photo with many faces", "group.jpg", "faces", min_faces=3), quality=92)
    face.save(add("name with spaces and non-ASCII", "Été à Zürich 写真 1.jpg", "faces"), quality=92)
    with Image.open(att_dir / "s1" / "1.pgm") as img:  # 92x112 greyscale PGM
        img.save(add("AT&T greyscale PGM", "att.pgm", "faces"))

    # Readable images without a face.
    ramp = np.linspace(40, 220, 200, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (150, 1))] * 3, axis=-1)).save(
        add("image with no face", "no_face.jpg", "no_face"))

    # Files that must be skipped with a reason.
    add("zero-byte file", "empty.jpg", "skip", "empty").write_bytes(b"")
    buffer = io.BytesIO()
    face.save(buffer, "JPEG", quality=92)
    add("truncated JPEG", "truncated.jpg", "skip", "truncated").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    add("text file named .jpg", "notes.jpg", "skip", "not an image").write_text("shopping list: eggs, milk\n" * 20)
    add("format Pillow cannot read (HEIC)", "IMG_0001.HEIC", "skip", "HEIC").write_bytes(_heic_bytes())
    add("decompression bomb", "bomb.png", "skip", "decompression bomb").write_bytes(_bomb_png(40_000, 40_000))
    Image.new("RGB", (1, 1), (200, 150, 120)).save(add("1x1 image", "one_pixel.png", "skip", "too small"))
    loop_a, loop_b = folder / "loop_a.jpg", folder / "loop_b.jpg"
    os.symlink(loop_b.name, loop_a)
    os.symlink(loop_a.name, loop_b)
    cases.append(Case("symlink loop (file)", loop_a, "skip", "link"))
    cases.append(Case("symlink loop (file, other end)", loop_b, "skip", "link"))
    os.symlink(".", folder / "loop")  # a folder link to its own folder: must not be followed
    unreadable = add("unreadable file (mode 000)", "unreadable.jpg", "skip", "ermission denied")
    face.save(unreadable, quality=92)
    os.chmod(unreadable, 0)
    os.mkfifo(add("named pipe named .jpg", "pipe.jpg", "skip", "not a regular file"))
    # A folder whose name looks like an image: walked into, its photo indexed.
    (folder / "album.jpg").mkdir()
    face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(add("photo inside a folder named .jpg", "album.jpg/inside.jpg",
                                                             "faces"), quality=92)
    return cases


def unreadable_paths(cases: list[Case]) -> list[str]:
    return [case.key for case in cases if case.path.name == "unreadable.jpg"]


def reads_are_denied(path: Path) -> bool:
    """Whether this process really cannot read ``path`` (false for root)."""
    try:
        with open(path, "rb"):
            return False
    except PermissionError:
        return True


@contextmanager
def deny_reads(paths):
    """Make ``open()`` of ``paths`` fail with PermissionError, as mode 000 would for a normal user."""
    denied = {os.path.abspath(p) for p in paths}
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(os.fspath(file)) in denied:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    builtins.open = guarded_open
    try:
        yield
    finally:
        builtins.open = real_open
