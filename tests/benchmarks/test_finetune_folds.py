"""bench_finetune_shift --ten-fold: each LFW fold's split, on the real pairs.txt (no faces aligned, no training)."""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_finetune_shift as bench  # noqa: E402
from embedkit.evaluation.pairs import read_lfw_pairs  # noqa: E402


@pytest.fixture(scope="module")
def lfw():
    pairs = read_lfw_pairs(bench.LFW_PAIRS)
    people = sorted({bench._person(p) for pair in pairs for p in (pair.path_a, pair.path_b)})
    train_photos = bench.training_photos(people, 4)
    paths = sorted({p for pair in pairs for p in (pair.path_a, pair.path_b)}
                   | {p for photos in train_photos.values() for p in photos})
    return pairs, train_photos, paths


def test_every_fold_tests_its_600_pairs_and_no_test_person_trains_or_validates(lfw):
    pairs, train_photos, paths = lfw
    tested = 0
    for fold in range(10):
        parts = bench.fold_parts(paths, pairs, fold, train_photos)
        part, labels, names = parts["part"], parts["labels"], parts["names"]
        rows = {p: r for r, p in enumerate(paths)}
        fold_pairs = [p for p in pairs if p.fold == fold]
        assert len(fold_pairs) == 600 and sum(p.same for p in fold_pairs) == 300
        for pair in fold_pairs:
            assert part[rows[pair.path_a]] == part[rows[pair.path_b]] == "test"
        tested += len(fold_pairs)
        test_people = {names[n] for n in labels[part == "test"]}
        learning = {names[n] for n in labels[np.isin(part, ("train", "val"))]}
        assert test_people == {bench._person(p) for pair in fold_pairs for p in (pair.path_a, pair.path_b)}
        assert learning and not learning & test_people
        train, val = set(labels[part == "train"].tolist()), set(labels[part == "val"].tolist())
        assert not train & val and train == set(parts["split"].train) and val == set(parts["split"].val)
        assert abs(len(val) / (len(train) + len(val)) - 0.1) < 0.01
        for r in np.flatnonzero(np.isin(part, ("train", "val"))):  # at most 4 photos of people with two or more
            assert paths[r] in train_photos[names[labels[r]]]
    assert tested == 6000


def test_fold_10_splits_people_as_the_single_fold_benchmark(lfw):
    pairs, train_photos, paths = lfw
    parts = bench.fold_parts(paths, pairs, bench.TEST_FOLD, train_photos)
    others = {bench._person(p) for pair in pairs if pair.fold != bench.TEST_FOLD for p in (pair.path_a, pair.path_b)}
    single = sorted(p for person in others if person in train_photos for p in train_photos[person])
    learning = np.isin(parts["part"], ("train", "val"))
    assert sorted(paths[r] for r in np.flatnonzero(learning)) == single


def test_a_person_in_two_folds_is_refused(lfw):
    pairs, train_photos, paths = lfw
    in_fold_1 = next(p for p in pairs if p.fold == 0 and p.same)
    moved = pairs + [replace(in_fold_1, fold=1)]  # fold 2 would test someone fold 1's model trains on
    with pytest.raises(ValueError, match="other folds"):
        bench.fold_parts(paths, moved, 1, train_photos)
