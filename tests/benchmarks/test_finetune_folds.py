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



def _fold_paths(pairs, photos_of) -> list[str]:
    return sorted({p for pair in pairs for p in (pair.path_a, pair.path_b)}
                  | {p for photos in photos_of.values() for p in photos})


def _photos(paths, parts, part) -> set[str]:
    return {p for p, x in zip(paths, parts["part"]) if x == part}


def test_more_training_photos_leave_the_validation_faces_as_they_were(lfw):
    """--train-images: training people bring every photo, validation people keep their first 4, so runs with
    either setting are chosen on the same validation pairs; the people of each part do not change."""
    pairs, four, four_paths = lfw
    people = sorted({bench._person(p) for pair in pairs for p in (pair.path_a, pair.path_b)})
    every = bench.training_photos(people, 10**6)
    every_paths = _fold_paths(pairs, every)
    for fold in (0, bench.TEST_FOLD):
        base = bench.fold_parts(four_paths, pairs, fold, four)
        more = bench.fold_parts(every_paths, pairs, fold, every, val_images=4)
        assert more["split"].train == base["split"].train and more["split"].val == base["split"].val
        assert _photos(every_paths, more, "val") == _photos(four_paths, base, "val")
        assert _photos(every_paths, more, "test") == _photos(four_paths, base, "test")
        trained = _photos(every_paths, more, "train")
        assert len(trained) > 1.5 * len(_photos(four_paths, base, "train"))
        assert trained >= _photos(four_paths, base, "train")
    assert bench._photo_rank(["b/b_2.jpg", "a/a_1.jpg", "b/b_1.jpg"]).tolist() == [1, 0, 0]


def test_fold_10_alone_keeps_its_validation_faces_with_every_training_photo(lfw):
    """The single-fold benchmark (face_inputs) caps validation people the same way."""
    pairs = lfw[0]
    test_paths = bench.pair_paths(pairs, bench.TEST_FOLD)
    others = sorted({bench._person(p) for pair in pairs if pair.fold != bench.TEST_FOLD
                     for p in (pair.path_a, pair.path_b)})

    def inputs(most):
        paths = [p for photos in bench.training_photos(others, most).values() for p in photos] + test_paths
        data = {"paths": paths, "kept": np.arange(len(paths)), "pairs": pairs, "val_images": 4,
                "crops": np.zeros((len(paths), 2, 2, 3), dtype=np.uint8)}
        _, split, faces, kept_paths = bench.face_inputs(data)
        return split, {part: {kept_paths[r] for r in faces.indices(part)} for part in ("train", "val", "test")}

    split4, four = inputs(4)
    split_all, every = inputs(10**6)
    assert split4.val == split_all.val and split4.train == split_all.train
    assert four["val"] == every["val"] and four["test"] == every["test"] == set(test_paths)
    assert every["train"] > four["train"] and len(every["train"]) > 1.5 * len(four["train"])
