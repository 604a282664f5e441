"""Identity-disjoint splits (embedkit.data.splits)."""

import json

import numpy as np
import pytest

from embedkit.data.splits import Split, count_of, split_identities


def test_parts_are_disjoint_and_cover_everyone():
    labels = np.repeat(np.arange(40), 3)
    split = split_identities(labels, val=6, test=10, seed=1)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert [len(p) for p in parts] == [24, 6, 10]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(range(40))


def test_reproducible_and_seed_dependent():
    labels = np.arange(100)
    assert split_identities(labels, seed=3) == split_identities(labels, seed=3)
    assert split_identities(labels, seed=3).test != split_identities(labels, seed=4).test


def test_fractions():
    split = split_identities(np.arange(200), val=0.1, test=0.25, seed=0)
    assert split.summary() == {"train": 130, "val": 20, "test": 50}
    assert count_of(0.5, 7) == 4 and count_of(3, 7) == 3


def test_json_round_trip_with_names():
    names = [f"p{i}" for i in range(10)]
    split = split_identities(np.arange(10), val=2, test=2, seed=0).with_names(names)
    again = Split.from_dict(json.loads(json.dumps(split.to_dict())))
    assert again == split
    assert again.names["test"] == [names[i] for i in split.test]


def test_masks_and_parts():
    split = Split(train=[0, 1], val=[2], test=[3])
    labels = np.array([0, 3, 2, 1, 9])
    assert split.part_of(labels).tolist() == ["train", "test", "val", "train", ""]
    assert split.mask(labels, "test").tolist() == [False, True, False, False, False]


def test_overlap_and_too_many_held_out_are_errors():
    with pytest.raises(ValueError):
        Split(train=[0, 1], val=[1], test=[2])
    with pytest.raises(ValueError):
        split_identities(np.arange(5), val=2, test=3)
