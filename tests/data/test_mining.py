"""Hard negatives on synthetic embeddings (embedkit.data.mining)."""

import numpy as np

from embedkit.data.mining import hard_negative_pairs


def test_nearest_other_person_is_chosen():
    # Person 0 at angle 0 and 0.1, person 1 at 0.2 (close), person 2 at 3.0 (far).
    angles = np.array([0.0, 0.1, 0.2, 3.0])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([0, 0, 1, 2])
    a, b = hard_negative_pairs(emb, labels, 4, seed=0, top_k=1)
    assert sorted(a.tolist()) == [0, 1, 2, 3]
    partner = dict(zip(a.tolist(), b.tolist()))
    assert partner[0] == 2 and partner[1] == 2 and partner[2] == 1
    assert np.all(labels[a] != labels[b])


def test_many_pairs_are_all_different_people():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 8))
    labels = np.repeat(np.arange(12), 5)
    a, b = hard_negative_pairs(emb, labels, 100, seed=1, top_k=3)
    assert a.size == 100 and np.all(labels[a] != labels[b])
    a2, b2 = hard_negative_pairs(emb, labels, 100, seed=1, top_k=3)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(b, b2)
