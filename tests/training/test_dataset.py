"""The training face set: a domain shift over every part, on real AT&T faces."""

from dataclasses import replace

import numpy as np

from embedkit.data.folders import identity_folders
from embedkit.data.shifts import apply_shift
from embedkit.data.splits import split_identities
from embedkit.faces import FaceExtractor
from embedkit.training.dataset import build_face_set, shifted_face_set


def _faces(att40):
    images = identity_folders(att40)
    return build_face_set(images, split_identities(images.labels, 6, 6, seed=0), FaceExtractor(32, None))


def test_rows_outside_the_split_are_shifted_too_so_a_lowres_face_set_is_the_same_for_every_split(att40):
    faces = _faces(att40)
    part = faces.part.copy()
    part[:10] = "unused"  # e.g. another LFW fold's test photos
    shifted = shifted_face_set(faces, "lowres", seed=0)
    shifted_again = shifted_face_set(replace(faces, part=part), "lowres", seed=0)
    np.testing.assert_array_equal(shifted.crops, shifted_again.crops)
    assert not np.array_equal(shifted_again.crops[:10], faces.crops[:10])
    assert shifted.crops.dtype == faces.crops.dtype and (faces.labels == shifted.labels).all()


def test_each_part_gets_its_own_draws_whatever_the_other_parts_hold(att40):
    """A random shift (mask): a part's shifted faces depend only on its own crops and the seed, so the
    validation faces stay the same when training people bring more photos."""
    faces = _faces(att40)
    val = faces.indices("val")
    shifted = shifted_face_set(faces, "mask", seed=3)
    np.testing.assert_array_equal(shifted.crops[val], apply_shift("mask", faces.crops[val], seed=3 + 2))
    fewer = faces.part.copy()
    fewer[faces.indices("train")[::2]] = "unused"
    again = shifted_face_set(replace(faces, part=fewer), "mask", seed=3)
    np.testing.assert_array_equal(again.crops[val], shifted.crops[val])
    assert not np.array_equal(shifted.crops[val], faces.crops[val])
