"""Domain shifts of aligned crops, on real AT&T faces."""

from pathlib import Path

import numpy as np
import pytest

from embedkit.data.shifts import SHIFTS, apply_shift

ATT = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "att"


@pytest.fixture(scope="module")
def crops():
    import cv2

    from embedkit.faces import read_image

    if not ATT.is_dir():
        pytest.skip("AT&T faces not available")
    return np.stack([cv2.resize(read_image(ATT / f"s{i}" / "1.pgm"), (160, 160)) for i in range(1, 5)])


def _detail(images):
    """Mean absolute Laplacian: fine detail left in the images."""
    import cv2

    return np.mean([np.abs(cv2.Laplacian(img.astype(np.float32), cv2.CV_32F)).mean() for img in images])


def test_lowres_keeps_the_shape_and_removes_detail(crops):
    low = apply_shift("lowres", crops)
    assert low.shape == crops.shape and low.dtype == np.uint8
    assert _detail(low) < 0.3 * _detail(crops)
    # Coarse content stays: the 24 px versions agree.
    assert np.abs(low.astype(int) - crops.astype(int)).mean() < 20


def test_mask_covers_the_lower_face_only(crops):
    masked = apply_shift("mask", crops, seed=0)
    changed = np.any(masked != crops, axis=-1)  # (N, 160, 160)
    assert not changed[:, :75].any()  # eyes and above untouched
    assert changed[:, 120:150, 60:100].mean() > 0.95  # mouth and chin covered
    again = apply_shift("mask", crops, seed=0)
    assert np.array_equal(masked, again)
    assert not np.array_equal(apply_shift("mask", crops, seed=1), masked)  # other colours / outlines


def test_unknown_shift_names_the_known_ones(crops):
    with pytest.raises(ValueError, match="lowres, mask"):
        apply_shift("fog", crops)
    assert set(SHIFTS) == {"lowres", "mask"}
