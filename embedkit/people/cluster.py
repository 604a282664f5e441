"""Grouping face embeddings into people: constrained average-link agglomeration.

Two groups of faces are as alike as the mean cosine similarity over every
pair of their faces (average linkage). For unit vectors that mean is the dot
product of the groups' mean vectors, so it costs one ``d``-vector per group
however large the groups grow. Groups merge while their similarity reaches
the threshold, most similar first, by rounds of reciprocal nearest
neighbours (groups that are each other's best partner merge together; for
average linkage this gives the same tree as merging one pair at a time).

Constraints: every group carries a set of tags, and two groups sharing a tag
never merge. A photo's faces share a tag (two faces in one photo are two
people), so do all the people that already exist (clustering new faces never
merges two existing people), and a face rejected from a person shares a tag
with that person. A group whose best partner falls below the threshold can
never merge again (average similarity to a merged group is a weighted mean
of similarities to its parts) and leaves the rounds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from embedkit.index import vectors as vec

logger = logging.getLogger(__name__)

# Neighbours looked at per group and round.
NEIGHBOURS = 16
# Groups smaller than this are not held to the relative condition (see agglomerate).
RELATIVE_MIN = 4


@dataclass
class Groups:
    """Groups of faces being merged.

    Attributes:
        sums: ``(n, d)`` sum of each group's unit vectors.
        counts: faces in each group.
        tags: constraint tags of each group (groups sharing one never merge).
        frozen: groups that may only take in non-frozen groups (existing people).
    """

    sums: np.ndarray
    counts: np.ndarray
    tags: list[frozenset]
    frozen: np.ndarray


def agglomerate(groups: Groups, threshold: float, relative: float = 0.0, relative_min: int = RELATIVE_MIN,
                neighbours: int = NEIGHBOURS, ceiling: float | None = None,
                pair_floor: float | None = None) -> np.ndarray:
    """Merge ``groups`` as the module says; returns, for each input group, the index of the
    group it ended in (a representative input group index).

    ``relative`` > 0 adds a second condition for two groups of at least
    ``relative_min`` faces each: their similarity must also reach ``relative``
    times the geometric mean of their own within-group similarities. Two
    tight groups of lookalike people (whose faces are all near one another)
    then stay apart, while a loose group of one person's varied photos still
    takes in its other pieces. ``ceiling`` caps what the relative condition
    asks: two groups at least that similar merge however tight they are.

    ``pair_floor`` (above ``threshold``) is what two single faces need to
    merge: a lone pair has no other face to confirm it, and in a library of
    many people each face has many strangers, some of whom score high. Two
    groups of ``m`` and ``n`` faces need ``threshold + (pair_floor -
    threshold) / sqrt(m * n)``: their similarity is a mean over ``m * n``
    pairs, and the margin asked shrinks like that mean's standard error.
    """
    n = len(groups.counts)
    parent = np.arange(n)
    if n == 0:
        return parent
    sums = np.array(groups.sums, np.float32, copy=True)
    counts = np.array(groups.counts, np.float64, copy=True)
    tags = list(groups.tags)
    frozen = np.array(groups.frozen, bool, copy=True)
    active = np.ones(n, bool)  # still a group that may merge
    # A group's best partner stays its best until one of the two changes: a merged group's
    # similarity to a third is a weighted mean of its parts', never above the best before.
    best = np.full(n, -1, np.int64)
    stale = np.ones(n, bool)
    rounds = 0
    while True:
        rounds += 1
        candidates = np.flatnonzero(active)
        if not (~frozen[candidates]).any():
            break
        means = (sums[candidates] / counts[candidates, None]).astype(np.float32)
        rows = np.flatnonzero(stale[candidates])
        within = None
        if relative:
            n_c = counts[candidates]
            with np.errstate(invalid="ignore", divide="ignore"):
                within = ((sums[candidates] ** 2).sum(1) - n_c) / (n_c * (n_c - 1))
            within[n_c < relative_min] = np.nan
        floor = None
        if pair_floor is not None and pair_floor > threshold:
            floor = (counts[candidates], pair_floor)
        found, dead = _best_partners(means, candidates, frozen[candidates], rows, tags, threshold, neighbours,
                                     within, relative, ceiling, floor)
        best[candidates[rows]] = found
        stale[candidates[rows]] = False
        looked_again = 0
        if floor is not None:
            # What two groups need grows smaller as they grow, and it is symmetric: a group that found
            # none acceptable before may be acceptable to one that just grew. Look at it again.
            named = found[found >= 0]
            again = named[(best[named] < 0) & active[named]]
            stale[again] = True
            looked_again = len(again)
        active[candidates[rows[dead]]] = False
        changed = []
        for a in candidates[rows[~dead]]:
            b = best[a]
            if b < 0 or not active[a] or not active[b] or best[b] != a:
                continue
            if tags[a] & tags[b]:
                continue
            keep, gone = (a, b) if (frozen[a] or (not frozen[b] and counts[a] >= counts[b])) else (b, a)
            sums[keep] += sums[gone]
            counts[keep] += counts[gone]
            tags[keep] = tags[keep] | tags[gone]
            active[gone] = False
            parent[gone] = keep
            changed += [keep, gone]
        if not changed:
            # Reciprocal pairs found among cached partners of groups not looked at this round.
            pairs = [a for a in candidates if active[a] and best[a] >= 0 and active[best[a]] and best[best[a]] == a]
            if not pairs and not looked_again:
                break
            stale[pairs] = True
            continue
        changed = np.asarray(changed)
        stale[changed] = True
        stale[np.isin(best, changed)] = True
    logger.debug("agglomerate: %d groups -> %d in %d rounds", n, int((parent == np.arange(n)).sum()), rounds)
    # Follow the merge chain to each group's final representative.
    for i in range(n):
        root = i
        while parent[root] != root:
            root = parent[root]
        parent[i] = root
    return parent


def _best_partners(means: np.ndarray, ids: np.ndarray, frozen: np.ndarray, rows: np.ndarray,
                   tags: list[frozenset], threshold: float, neighbours: int, within=None, relative: float = 0.0,
                   ceiling: float | None = None, floor=None):
    """For the candidate ``rows``: the most similar allowed partner at or above ``threshold``
    (a group id from ``ids``, or -1), and whether the row can never merge again."""
    import faiss

    best = np.full(len(rows), -1, np.int64)
    dead = np.zeros(len(rows), bool)
    free_rows = np.flatnonzero(~frozen)
    index_all = faiss.IndexFlatIP(means.shape[1])
    index_all.add(np.ascontiguousarray(means))
    index_free = faiss.IndexFlatIP(means.shape[1])
    index_free.add(np.ascontiguousarray(means[free_rows]))
    # Free groups may merge with any group; frozen ones only with free ones.
    for select, index, lookup in ((~frozen[rows], index_all, None), (frozen[rows], index_free, free_rows)):
        positions = np.flatnonzero(select)
        if len(positions) == 0:
            continue
        if index.ntotal == 0:
            dead[positions] = True
            continue
        k = min(neighbours + 1, index.ntotal)
        sims, found = vec.search(index, np.ascontiguousarray(means[rows[positions]]), k)
        if lookup is not None:
            found = np.where(found >= 0, lookup[np.maximum(found, 0)], -1)
        for pos, row_sims, row_found in zip(positions, sims, found):
            row = rows[pos]
            row_tags = tags[ids[row]]
            waiting = False  # held back by the floor only: may merge once a group has grown
            for sim, other in zip(row_sims, row_found):
                if sim < threshold or other < 0:
                    break
                if other == row or (frozen[row] and frozen[other]):
                    continue
                if row_tags and row_tags & tags[ids[other]]:
                    continue
                if floor is not None and sim < pair_floor_needs(threshold, floor[1], floor[0][row] * floor[0][other]):
                    waiting = True
                    continue
                if within is not None and (ceiling is None or sim < ceiling):
                    tight = [w for w in (within[row], within[other]) if w == w]
                    if len(tight) == 2 and sim < relative_needs(relative, *tight):
                        continue
                best[pos] = ids[other]
                break
            # Nothing reaches the threshold (the k-th neighbour is already below): never again.
            if best[pos] < 0 and not waiting and (row_sims[-1] < threshold or k >= index.ntotal):
                dead[pos] = True
    return best, dead


def relative_needs(relative: float, within_a: float, within_b: float) -> float:
    """What the relative condition asks of two groups with these within-group similarities:
    ``relative`` times their geometric mean."""
    return relative * float(np.exp(np.mean(np.log(np.maximum([within_a, within_b], 1e-6)))))


def pair_floor_needs(threshold: float, pair_floor: float, n_pairs: float) -> float:
    """The similarity two groups with ``n_pairs`` face pairs between them need under ``pair_floor``."""
    return threshold + (pair_floor - threshold) / float(np.sqrt(n_pairs))


def cluster_vectors(vectors: np.ndarray, threshold: float, photos=None, relative: float = 0.0,
                    relative_min: int = RELATIVE_MIN, ceiling: float | None = None,
                    pair_floor: float | None = None) -> np.ndarray:
    """Cluster unit ``vectors`` (one face each) into labels ``0..C-1``, largest cluster first.

    ``photos`` (optional) names each face's photo: faces of one photo never share a label.
    ``relative``, ``relative_min``, ``ceiling`` and ``pair_floor`` as in :func:`agglomerate`.
    """
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    tags = [frozenset() for _ in range(n)]
    if photos is not None:
        photos = list(photos)
        seen: dict = {}
        for i, photo in enumerate(photos):
            seen.setdefault(photo, []).append(i)
        for photo, members in seen.items():
            if len(members) > 1:
                for i in members:
                    tags[i] = frozenset({("photo", photo)})
    parent = agglomerate(Groups(vectors, np.ones(n), tags, np.zeros(n, bool)), threshold, relative, relative_min,
                         ceiling=ceiling, pair_floor=pair_floor)
    return relabel(parent)


def relabel(parent: np.ndarray) -> np.ndarray:
    """Representatives to labels ``0..C-1``, the largest cluster first."""
    roots, inverse, sizes = np.unique(parent, return_inverse=True, return_counts=True)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse]
