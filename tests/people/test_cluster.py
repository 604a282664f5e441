"""The clustering core on vectors: exact average linkage, constraints, labels."""

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from embedkit.evaluation.clustering import clustering_report
from embedkit.people.cluster import Groups, agglomerate, cluster_vectors


def _blobs(n_people=12, per_person=8, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 32))
    labels = np.repeat(np.arange(n_people), per_person)
    vectors = centres[labels] + rng.normal(size=(len(labels), 32)) * noise
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), labels


def _same_partition(a, b) -> bool:
    return clustering_report(a, b)["bcubed_f"] == 1.0


def test_same_partition_as_scipy_average_linkage():
    # Wide noise so that clusters overlap and the merge order matters.
    vectors, _ = _blobs(noise=1.2, seed=3)
    for threshold in (0.1, 0.25, 0.4):
        ours = cluster_vectors(vectors, threshold)
        tree = linkage(vectors.astype(np.float64), method="average", metric="cosine")
        # scipy merges while the average cosine distance is at most 1 - threshold
        theirs = fcluster(tree, t=1 - threshold, criterion="distance")
        assert _same_partition(ours, theirs), threshold


def test_labels_are_largest_first_and_recover_blobs():
    vectors, truth = _blobs(noise=0.3)
    labels = cluster_vectors(vectors, 0.5)
    sizes = np.bincount(labels)
    assert (np.diff(sizes) <= 0).all()
    assert _same_partition(labels, truth)


def test_faces_of_one_photo_never_share_a_label():
    vectors, truth = _blobs(noise=0.1)
    photos = [f"p{i}" for i in range(len(vectors))]
    # the first two faces of person 0 come from one photo: they must be split even though they match best
    photos[1] = photos[0]
    labels = cluster_vectors(vectors, 0.5, photos)
    assert labels[0] != labels[1]
    assert clustering_report(truth, labels)["bcubed_precision"] == 1.0


def test_frozen_groups_take_in_new_faces_but_never_merge_with_each_other():
    vectors, truth = _blobs(n_people=2, per_person=6, noise=0.05)
    # person 0 exists twice (a user split it into two people); its new face joins one of them
    sums = np.stack([vectors[0:2].sum(0), vectors[2:4].sum(0), vectors[4]])
    groups = Groups(sums, np.array([2, 2, 1]), [frozenset({("existing",)})] * 2 + [frozenset()],
                    np.array([True, True, False]))
    parent = agglomerate(groups, 0.5)
    assert parent[0] != parent[1] and parent[2] in (parent[0], parent[1])


def test_a_rejected_face_never_joins_that_group():
    vectors, _ = _blobs(n_people=1, per_person=4, noise=0.05)
    sums = np.stack([vectors[:3].sum(0), vectors[3]])
    tags = [frozenset({("existing",), ("rejected", 1)}), frozenset({("rejected", 1)})]
    parent = agglomerate(Groups(sums, np.array([3, 1]), tags, np.array([True, False])), 0.5)
    assert parent[1] == 1


def _two_tight_halves(between: float, n: int = 5, seed: int = 0):
    """One person's photos in two tight groups (e.g. with and without glasses) whose mean similarity is ``between``."""
    rng = np.random.default_rng(seed)
    axes = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    u, w = axes[0], axes[1]
    angle = np.arccos(between) / 2  # the two group centres, each this far from their bisector
    centres = [np.cos(angle) * u + np.sin(angle) * w, np.cos(angle) * u - np.sin(angle) * w]
    vectors = np.concatenate([c + 0.02 * rng.normal(size=(n, 32)) for c in centres])
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_the_relative_condition_keeps_tight_groups_apart_unless_they_reach_the_ceiling():
    vectors = _two_tight_halves(0.68)
    # within each half the similarity is ~0.99: the relative condition asks 0.8 * 0.99 > 0.68
    assert len(set(cluster_vectors(vectors, 0.6, relative=0.8, relative_min=4))) == 2
    assert len(set(cluster_vectors(vectors, 0.6, relative=0.8, relative_min=4, ceiling=0.65))) == 1
    assert len(set(cluster_vectors(vectors, 0.6, relative=0.8, relative_min=4, ceiling=0.7))) == 2
    assert len(set(cluster_vectors(vectors, 0.6))) == 1  # without the relative condition they merge anyway


def _unit(v):
    v = np.asarray(v, np.float64)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_two_lone_faces_need_the_pair_floor_but_a_group_needs_less():
    rng = np.random.default_rng(4)
    axes = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    # Two lone faces 0.6 alike: above the threshold 0.5, below the floor 0.7.
    pair = _unit([axes[0], 0.6 * axes[0] + 0.8 * axes[1]])
    assert len(set(cluster_vectors(pair, 0.5))) == 1
    assert len(set(cluster_vectors(pair, 0.5, pair_floor=0.7))) == 2
    assert len(set(cluster_vectors(pair, 0.5, pair_floor=0.55))) == 1
    # A face 0.62 alike to each of four tight faces: 4 pairs, so it needs 0.5 + 0.2 / 2 = 0.6 - it joins.
    group = _unit(axes[0] + 0.01 * rng.normal(size=(4, 32)))
    face = _unit(0.62 * axes[0] + np.sqrt(1 - 0.62**2) * axes[2])
    labels = cluster_vectors(np.vstack([group, face]), 0.5, pair_floor=0.7)
    assert len(set(labels)) == 1
    # At 0.58 it stays out (0.58 < 0.6), and a floor at or below the threshold changes nothing.
    face = _unit(0.58 * axes[0] + np.sqrt(1 - 0.58**2) * axes[2])
    assert len(set(cluster_vectors(np.vstack([group, face]), 0.5, pair_floor=0.7))) == 2
    assert len(set(cluster_vectors(np.vstack([group, face]), 0.5, pair_floor=0.4))) == 1


def test_a_face_turned_down_as_a_lone_pair_joins_once_its_partner_has_grown():
    # b and c are very alike and pair first; a is 0.66 alike to both: too little for a lone pair
    # (floor 0.7), enough for the pair (2 pairs: 0.5 + 0.2 / sqrt 2 = 0.64).
    rng = np.random.default_rng(5)
    axes = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    a = 0.66 * axes[0] + np.sqrt(1 - 0.66**2) * axes[1]
    b, c = axes[0], axes[0] + 0.05 * axes[3]
    assert len(set(cluster_vectors(_unit(np.vstack([a, b, c])), 0.5, pair_floor=0.7))) == 1
    assert len(set(cluster_vectors(_unit(np.vstack([a, b])), 0.5, pair_floor=0.7))) == 2
