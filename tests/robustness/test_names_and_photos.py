"""File names that are not UTF-8 or hold control characters, and photos of
every legal size: indexed (names kept byte for byte) or one escaped line."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sqlite3
import struct

import pytest
from PIL import Image

from embedkit.faces.io import read_image
from embedkit.textsafe import printable

from .bad_inputs import _bomb_png, lfw_image
from .conftest import faces_per_file, index_args, run_cli, stderr_lines, verify_index


def _name(raw: bytes) -> str:
    return os.fsdecode(raw)


def _message_lines(stderr: str) -> list[str]:
    """stderr without the progress bar's redraws."""
    return [line for line in stderr_lines(stderr) if not line.startswith("Embedding")]


@pytest.fixture
def odd_names(att_dir, tmp_path):
    """AT&T photos under names no UTF-8 decoder accepts, plus one good name and one broken file."""
    photos = tmp_path / "photos"
    photos.mkdir()
    sources = sorted((att_dir / "s1").iterdir())
    names = [b"plain.pgm", b"caf\xe9.pgm", b"\xff\xfe\x80.pgm", b"\xe9t\xe9/one.pgm", b"\xe9t\xe9/tw\xf6.pgm",
             b"latin1 \xc0 la plage.pgm"]
    for raw, source in zip(names, sources):
        target = photos / _name(raw)
        target.parent.mkdir(exist_ok=True)
        shutil.copy(source, target)
    (photos / _name(b"broken\xff.jpg")).write_text("not an image")
    return photos, [photos / _name(raw) for raw in names]


def _stored_paths(index_dir):
    db = sqlite3.connect(f"file:{index_dir / 'metadata.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT path, label FROM files").fetchall()
    db.close()
    return rows


def test_non_utf8_names_are_indexed_losslessly_and_never_block_the_rest(odd_names, tiny_model, tmp_path):
    photos, files = odd_names
    index_dir = tmp_path / "index"
    result = run_cli([a for a in index_args(photos, index_dir, tiny_model, "--labels") if a != "--json"])
    assert result.exit_code == 0, result.stderr
    assert _message_lines(result.stderr) == [f"skipped {photos}/broken\\xff.jpg: not an image file, or an image "
                                           f"format that cannot be read"]
    stored = dict(_stored_paths(index_dir))
    # Names that are UTF-8 are text; the others are their exact bytes.
    assert set(stored) == {str(p) if b"\xff" not in os.fsencode(p) and _utf8(p) else os.fsencode(p) for p in files}
    assert stored[os.fsencode(files[3])] == os.fsencode("\udce9t\udce9")  # the label, kept as bytes too
    again = json.loads(run_cli(index_args(photos, index_dir, tiny_model, "--labels")).stdout)
    assert again["unchanged"] == len(files) and again["embedded_files"] == 0
    query = run_cli(["query", files[2], "--index", index_dir, "-k", "1", "--json"])
    assert json.loads(query.stdout)["results"][0]["faces"][0]["matches"][0]["path"] == str(files[2])  # JSON round-trips the name
    text = run_cli(["query", files[2], "--index", index_dir, "-k", "1"])
    assert text.exit_code == 0 and f"{photos}/\\xff\\xfe\\x80.pgm" in text.stdout
    files[1].unlink()
    report = json.loads(run_cli(index_args(photos, index_dir, tiny_model, "--labels")).stdout)
    assert report["removed_files"] == 1 and report["total_files"] == len(files) - 1
    assert verify_index(index_dir)[1]["ok"]


def test_photo_folder_and_index_folder_with_non_utf8_names(att_dir, tiny_model, tmp_path):
    photos, index_dir = tmp_path / _name(b"fotos \xe9t\xe9"), tmp_path / _name(b"index \xff")
    shutil.copytree(att_dir / "s2", photos / "s2")
    for _ in range(2):
        result = run_cli([a for a in index_args(photos, index_dir, tiny_model) if a != "--json"])
        assert result.exit_code == 0 and result.stdout.startswith(f"{tmp_path}/index \\xff: 10 faces in 10 files")
    assert "10 unchanged" in result.stdout
    image = photos / "s2" / "3.pgm"
    query = run_cli(["query", image, "--index", index_dir, "-k", "1", "--json"])
    assert json.loads(query.stdout)["results"][0]["faces"][0]["matches"][0]["path"] == str(image)
    assert verify_index(index_dir)[1]["ok"]


def _utf8(path) -> bool:
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def test_control_characters_in_names_cannot_forge_output_lines(att_dir, tiny_model, tmp_path):
    photos, index_dir = tmp_path / "photos", tmp_path / "index"
    photos.mkdir()
    forged = "x.jpg: empty file (0 bytes)\nskipped passwords.jpg: not an image\n.jpg"
    (photos / forged).write_text("not an image")
    shown = "\x1b[2J\x1b[31mred\rface\u202e\u2028.pgm"
    shutil.copy(att_dir / "s1" / "1.pgm", photos / shown)
    result = run_cli(index_args(photos, index_dir, tiny_model)[:-1])
    assert result.exit_code == 0
    lines = _message_lines(result.stderr)
    assert lines == [f"skipped {photos}/{printable(forged)}: not an image file, or an image format that cannot be "
                     f"read"]
    assert "\\n" in lines[0] and "passwords.jpg" in lines[0]  # shown, escaped, on the one line
    query = run_cli(["query", photos / shown, "--index", index_dir, "-k", "1"])
    assert query.exit_code == 0
    assert len(query.stdout.splitlines()) == 2 and "\x1b" not in query.stdout and "\r" not in query.stdout
    assert "\\x1b[2J\\x1b[31mred\\rface\\u202e\\u2028.pgm" in query.stdout
    error = run_cli(["query", photos / forged, "--index", index_dir])
    assert error.exit_code == 1 and len(error.stderr.strip().splitlines()) == 1


def test_log_lines_escape_control_characters():
    from embedkit.cli.common import PrintableFormatter

    record = logging.LogRecord("embedkit", logging.WARNING, __file__, 1, "skipped %s: %s", ("a\nb\udcff", "x\ry"),
                               None)
    line = PrintableFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING skipped a\\nb\\xff: x\\ry"


def test_printable_leaves_ordinary_names_alone():
    assert printable("Été à Zürich 写真 1.jpg") == "Été à Zürich 写真 1.jpg"
    assert printable(b"caf\xe9") == "caf\\xe9"
    assert printable("\x00\x7f\x85\t") == "\\x00\\x7f\\x85\\t"


# -- photo sizes ------------------------------------------------------------------------------------

def _jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header is patched to declare ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 90, 60)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    at = data.index(b"\xff\xc0") + 5
    data[at:at + 4] = struct.pack(">HH", height, width)
    return bytes(data)


def test_a_108_megapixel_phone_photo_is_decoded_reduced_and_indexed(lfw_dir, tiny_model, tmp_path):
    photos, index_dir = tmp_path / "photos", tmp_path / "index"
    photos.mkdir()
    big = lfw_image(lfw_dir).resize((12000, 9000), Image.Resampling.NEAREST)
    big.save(photos / "phone.jpg", quality=70)
    image = read_image(photos / "phone.jpg")
    assert image.shape == (2250, 3000, 3)  # decoded at 1/4 scale, never at full size
    report = json.loads(run_cli(index_args(photos, index_dir, tiny_model)).stdout)
    assert report["embedded_files"] == 1 and report["total_faces"] == 1 and not report["errors"]


@pytest.mark.parametrize("mode", ["RGB", "P", "I;16", "RGBA"])
def test_large_photos_of_other_formats_are_reduced_after_decoding(lfw_dir, tmp_path, mode):
    face = lfw_image(lfw_dir).resize((4000, 3000), Image.Resampling.NEAREST)
    path = tmp_path / "big.png"
    if mode == "I;16":
        import numpy as np

        Image.fromarray((np.asarray(face.convert("L"), np.uint16) * 257)).save(path)
    else:
        face.convert(mode).save(path)
    assert read_image(path).shape == (1500, 2000, 3)


@pytest.mark.parametrize("width, height, reason", [
    (30000, 20000, "no camera makes 600 megapixels"),  # larger than any camera, as a JPEG
    (65000, 65000, "too large"),
])
def test_only_sizes_no_camera_makes_are_refused(tmp_path, width, height, reason):
    from embedkit.errors import ImageError

    path = tmp_path / "huge.jpg"
    path.write_bytes(_jpeg_with_size(width, height))
    with pytest.raises(ImageError, match=reason):
        read_image(path)


def test_legal_sizes_are_not_refused_by_their_header(tmp_path):
    """A 200-megapixel JPEG header is not refused for its size (its short data may fail as truncated)."""
    from embedkit.errors import ImageError

    path = tmp_path / "phone200.jpg"
    path.write_bytes(_jpeg_with_size(16320, 12240))
    try:
        assert max(read_image(path).shape) <= 4 * 1600
    except ImageError as exc:
        assert "too large" not in exc.reason


@pytest.mark.parametrize("width, height", [(0, 0), (0, 5000), (5000, 0)])
def test_zero_sized_images_are_one_line(tmp_path, width, height):
    from embedkit.errors import ImageError

    path = tmp_path / "zero.png"
    path.write_bytes(_bomb_png(width, height))
    with pytest.raises(ImageError):
        read_image(path)


def test_huge_exif_block_is_read_or_refused_quickly(lfw_dir, tmp_path):
    face = lfw_image(lfw_dir)
    exif = Image.Exif()
    exif[0x010E] = "x" * 60000  # ImageDescription: about the most one JPEG segment holds
    exif[0x0112] = 1
    face.save(tmp_path / "exif.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "exif.jpg").shape == (250, 250, 3)
    broken = bytearray((tmp_path / "exif.jpg").read_bytes())
    at = broken.index(b"Exif\x00\x00") + 6
    broken[at + 4:at + 8] = b"\xff\xff\xff\x7f"  # first IFD offset far past the end
    (tmp_path / "bad_exif.jpg").write_bytes(bytes(broken))
    assert read_image(tmp_path / "bad_exif.jpg").shape == (250, 250, 3)


def test_a_link_to_dev_zero_is_skipped_not_read(att_dir, tiny_model, tmp_path):
    photos, index_dir = tmp_path / "photos", tmp_path / "index"
    photos.mkdir()
    shutil.copy(att_dir / "s1" / "1.pgm", photos / "1.pgm")
    os.symlink("/dev/zero", photos / "zero.jpg")
    os.symlink("/dev/urandom", photos / "random.png")
    result = run_cli(index_args(photos, index_dir, tiny_model))
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["total_faces"] == 1
    assert sorted(e["reason"] for e in report["errors"]) == ["not a regular file (a pipe, device or socket)"] * 2
    assert list(faces_per_file(index_dir)) == [str(photos / "1.pgm")]
