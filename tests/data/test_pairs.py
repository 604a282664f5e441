"""Pair sampling on integer labels (embedkit.data.pairs)."""

import itertools

import numpy as np
import pytest

from embedkit.data.pairs import count_pairs, sample_pairs


def _unordered(idx_a, idx_b):
    return set(zip(np.minimum(idx_a, idx_b).tolist(), np.maximum(idx_a, idx_b).tolist()))


def _brute_force_pairs(labels):
    same, diff = set(), set()
    for i, j in itertools.combinations(range(len(labels)), 2):
        (same if labels[i] == labels[j] else diff).add((i, j))
    return same, diff


@pytest.fixture
def labels():
    rng = np.random.default_rng(123)
    return rng.integers(0, 300, size=2000)


def test_same_flag_matches_labels(labels):
    a, b, same = sample_pairs(labels, 5000, seed=0)
    np.testing.assert_array_equal(same, labels[a] == labels[b])
    assert a.dtype == np.int64 and b.dtype == np.int64 and same.dtype == bool


def test_balanced_no_self_pairs_no_duplicates(labels):
    a, b, same = sample_pairs(labels, 5000, seed=0)
    assert len(a) == 5000
    assert same.sum() == 2500
    assert np.all(a != b)
    assert len(_unordered(a, b)) == 5000


def test_same_fraction(labels):
    _, _, same = sample_pairs(labels, 1000, seed=1, same_fraction=0.25)
    assert same.sum() == 250
    _, _, same = sample_pairs(labels, 1000, seed=1, same_fraction=0.0)
    assert same.sum() == 0
    _, _, same = sample_pairs(labels, 1000, seed=1, same_fraction=1.0)
    assert same.sum() == 1000


def test_reproducible_and_seed_dependent(labels):
    first = sample_pairs(labels, 1000, seed=7)
    again = sample_pairs(labels, 1000, seed=7)
    other = sample_pairs(labels, 1000, seed=8)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], other[0])


def test_order_within_pair_is_random(labels):
    a, b, same = sample_pairs(labels, 4000, seed=3)
    diff = ~same
    # Different pairs are enumerated with the smaller label first; a random
    # orientation should undo that about half of the time.
    frac = np.mean(labels[a[diff]] < labels[b[diff]])
    assert 0.4 < frac < 0.6


def test_asking_for_everything_returns_every_pair_once():
    labels = np.array([5, 5, 5, 9, 9, 2, 7, 7, 7, 7])
    all_same, all_diff = _brute_force_pairs(labels)
    assert count_pairs(labels) == (len(all_same), len(all_diff))
    a, b, same = sample_pairs(labels, 10_000, seed=0)
    assert _unordered(a[same], b[same]) == all_same
    assert _unordered(a[~same], b[~same]) == all_diff
    assert len(a) == len(all_same) + len(all_diff)


def test_all_same_pairs_when_exactly_that_many_requested():
    labels = np.repeat(np.arange(6), [1, 2, 3, 4, 5, 6])
    all_same, _ = _brute_force_pairs(labels)
    a, b, same = sample_pairs(labels, 2 * len(all_same), seed=4)
    assert same.sum() == len(all_same)
    assert _unordered(a[same], b[same]) == all_same


def test_shortfall_of_same_pairs_is_made_up_with_different():
    labels = np.arange(50)  # everyone unique: no same pairs exist
    a, b, same = sample_pairs(labels, 40, seed=0)
    assert len(a) == 40 and not same.any()


def test_same_pairs_are_uniform_over_pairs():
    # One big identity and one small: same pairs should come from the big one
    # in proportion to its pair count (45 vs 1), not 50/50 by identity.
    labels = np.array([0] * 10 + [1] * 2)
    hits = 0
    for seed in range(400):
        a, _, same = sample_pairs(labels, 2, seed=seed, same_fraction=0.5)
        hits += int(labels[a[same]][0] == 1)
    assert hits < 40  # expected 400 / 46, about 9


def test_large_identity_decodes_exactly():
    labels = np.zeros(300_000, dtype=np.int64)  # ~4.5e10 same pairs
    labels[:10] = np.arange(1, 11)
    a, b, same = sample_pairs(labels, 20_000, seed=0)
    assert np.all(a != b)
    assert np.all((a >= 0) & (a < labels.size) & (b >= 0) & (b < labels.size))
    np.testing.assert_array_equal(same, labels[a] == labels[b])
    assert len(_unordered(a, b)) == 20_000


def test_fast_for_many_pairs():
    labels = np.random.default_rng(0).integers(0, 20_000, size=200_000)
    a, b, same = sample_pairs(labels, 100_000, seed=0)
    assert len(a) == 100_000 and same.sum() == 50_000


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.array([0.5, 1.5]), "integers"),
        (np.zeros((2, 2), dtype=int), "1-D"),
    ],
)
def test_rejects_bad_labels(bad, message):
    with pytest.raises(ValueError, match=message):
        sample_pairs(bad, 2, seed=0)


def test_rejects_bad_arguments(labels):
    with pytest.raises(ValueError, match="n_pairs"):
        sample_pairs(labels, -1, seed=0)
    with pytest.raises(ValueError, match="same_fraction"):
        sample_pairs(labels, 10, seed=0, same_fraction=1.5)


def test_empty_request(labels):
    a, b, same = sample_pairs(labels, 0, seed=0)
    assert len(a) == len(b) == len(same) == 0
