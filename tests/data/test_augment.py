"""Seeded augmentation of uint8 crops (embedkit.data.augment)."""

import numpy as np
import pytest

from embedkit.data.augment import augment_copies, augment_crop


@pytest.fixture
def crops():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(3, 40, 40, 3), dtype=np.uint8)


def test_shapes_and_sources(crops):
    out, source = augment_copies(crops, 4, seed=0)
    assert out.shape == (12, 40, 40, 3) and out.dtype == np.uint8
    assert source.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]


def test_deterministic_in_seed(crops):
    a, _ = augment_copies(crops, 3, seed=7)
    b, _ = augment_copies(crops, 3, seed=7)
    c, _ = augment_copies(crops, 3, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_copies_differ_from_original_and_each_other(crops):
    out, _ = augment_copies(crops[:1], 4, seed=0)
    assert all(not np.array_equal(o, crops[0]) for o in out)
    assert not np.array_equal(out[0], out[1])


def test_a_copy_still_resembles_its_source():
    # A smooth image: augmented copies stay correlated with it.
    y, x = np.mgrid[0:64, 0:64]
    image = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    copy = augment_crop(image, np.random.default_rng(1))
    corr = np.corrcoef(image[..., 0].ravel(), copy[..., 0].ravel())[0, 1]
    assert abs(corr) > 0.5


def test_zero_copies_and_bad_input(crops):
    out, source = augment_copies(crops, 0, seed=0)
    assert out.shape == (0, 40, 40, 3) and source.size == 0
    with pytest.raises(ValueError):
        augment_crop(crops[0].astype(np.float32), np.random.default_rng(0))
