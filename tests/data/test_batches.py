"""Identity batches (people x faces) on integer labels."""

import numpy as np
import pytest

from embedkit.data.batches import identity_batches


def test_batches_hold_several_faces_of_several_people():
    labels = np.repeat(np.arange(20), 5)
    batches = identity_batches(labels, n_batches=7, batch_size=32, per_person=4, seed=0)
    assert len(batches) == 7
    for batch in batches:
        people, counts = np.unique(labels[batch], return_counts=True)
        assert people.size == 8 and np.all(counts == 4)
        assert np.unique(batch).size == batch.size  # no face twice in a batch


def test_people_with_one_face_are_never_drawn_and_everyone_is_seen():
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4])  # 2 and 4 have one face
    batches = identity_batches(labels, n_batches=6, batch_size=4, per_person=2, seed=3)
    seen = np.unique(labels[np.concatenate(batches)])
    assert set(seen.tolist()) == {0, 1, 3}


def test_same_seed_same_batches():
    labels = np.repeat(np.arange(10), 3)
    a = identity_batches(labels, 5, 12, 3, seed=1)
    b = identity_batches(labels, 5, 12, 3, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_needs_two_people_with_two_faces():
    with pytest.raises(ValueError, match="two people"):
        identity_batches(np.array([0, 0, 1, 2]), 1, 8, 2, seed=0)
