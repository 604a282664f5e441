"""bench_people_att: the dominance check and the reasons it gives for pieces kept apart."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_people_att as bench  # noqa: E402
from embedkit.people.cluster import cluster_vectors  # noqa: E402

PIECES = {"similarity": 0.58, "within": [0.95, 0.79], "sizes": [5, 5]}
SETTING = {"threshold": 0.5, "relative": 0.8, "relative_min": 4, "ceiling": 0.66, "pair_floor": None}


def _pair(similarity, within, sizes):
    return {"similarity": similarity, "within": sorted(within), "sizes": sizes, "people": ["a", "b"]}


def test_a_pair_dominates_only_when_as_alike_no_tighter_and_no_smaller():
    looser = _pair(0.62, [0.75, 0.84], [44, 6])
    assert bench.dominating(PIECES, [looser]) == [looser]
    assert bench.dominating(PIECES, [_pair(0.57, [0.75, 0.84], [44, 6])]) == []  # less alike
    assert bench.dominating(PIECES, [_pair(0.62, [0.80, 0.84], [44, 6])]) == []  # its looser group is tighter
    assert bench.dominating(PIECES, [_pair(0.62, [0.75, 0.96], [44, 6])]) == []  # its tighter group is tighter
    assert bench.dominating(PIECES, [_pair(0.62, [0.75, 0.84], [44, 4])]) == []  # a smaller group
    # sorted, the most alike first
    other = _pair(0.60, [0.70, 0.70], [9, 9])
    assert bench.dominating(PIECES, [other, looser]) == [looser, other]


def test_reasons_follow_the_library_conditions():
    assert bench.kept_apart_by(0.45, (5, 5), (0.9, 0.9), SETTING) == "below the merge threshold"
    assert bench.kept_apart_by(0.58, (5, 5), (0.95, 0.79), SETTING) == "relative condition"
    assert bench.kept_apart_by(0.58, (3, 5), (0.95, 0.79), SETTING) == "other (cannot-link)"  # a group < 4
    assert bench.kept_apart_by(0.68, (5, 5), (0.95, 0.9), SETTING) == "other (cannot-link)"  # above the ceiling
    floored = {**SETTING, "pair_floor": 0.7}
    assert bench.kept_apart_by(0.6, (1, 1), (np.nan, np.nan), floored) == "lone-pair floor"


def test_cluster_pairs_compare_clusters_of_different_people_only():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64))
    vectors = np.concatenate([c + 0.2 * rng.normal(size=(6, 64)) for c in centres])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = np.repeat(np.array(["p0", "p1", "p1"]), 6)  # p1's photos in two tight pieces
    labels = cluster_vectors(vectors.astype(np.float32), 0.5)
    assert len(set(labels.tolist())) == 3
    pairs = bench.cluster_pairs(vectors, truth, labels, relative_min=4)
    assert len(pairs) == 2 and all("p0" in p["people"] and "p1" in p["people"] for p in pairs)
    assert all(p["sizes"] == [6, 6] and p["within"][0] <= p["within"][1] for p in pairs)
