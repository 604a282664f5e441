import numpy as np
import pytest
from PIL import Image

from embedkit.errors import ImageError
from embedkit.faces import read_image


@pytest.fixture
def photo(lfw_dir):
    return Image.open(lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg").convert("RGB")


@pytest.mark.parametrize("mode,suffix", [("L", ".png"), ("P", ".png"), ("RGBA", ".png"), ("CMYK", ".jpg"),
                                         ("I;16", ".png"), ("RGB", ".webp"), ("RGB", ".bmp"), ("L", ".pgm")])
def test_every_mode_becomes_uint8_rgb(tmp_path, photo, mode, suffix):
    if mode == "I;16":
        img = Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257)
    else:
        img = photo.convert(mode)
    path = tmp_path / f"face{suffix}"
    img.save(path)
    array = read_image(path)
    assert array.dtype == np.uint8 and array.shape == (250, 250, 3)
    assert array.mean() > 20


def test_exif_orientation_is_applied(tmp_path, photo):
    rotated = photo.rotate(90, expand=True)  # stored turned a quarter anticlockwise ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the tag that says "turn a quarter clockwise to view"
    path = tmp_path / "sideways.jpg"
    rotated.save(path, exif=exif)
    upright = read_image(path).astype(float)
    assert np.abs(upright - np.asarray(photo, float)).mean() < 10


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"this is not an image", "not an image"),
])
def test_unreadable_files_name_the_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError) as err:
        read_image(path)
    assert err.value.path == str(path) and reason in err.value.reason


def test_truncated_jpeg(tmp_path, photo):
    path = tmp_path / "cut.jpg"
    photo.save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ImageError, match="truncated"):
        read_image(path)


def test_tiny_and_huge_declared_images(tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    with pytest.raises(ImageError, match="too small"):
        read_image(tiny)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    with pytest.raises(ImageError, match="too large"):
        read_image(bomb)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match="cannot be read"):
        read_image(tmp_path / "nope.jpg")
