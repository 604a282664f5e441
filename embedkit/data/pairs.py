"""Pair sampling on integer identity labels.

Label convention: ``same[k]`` is True when ``labels[idx_a[k]] == labels[idx_b[k]]``
(1 = same person, 0 = different people).

Pairs are drawn uniformly *without replacement* from the set of unordered pairs
of distinct items, separately for same-identity and different-identity pairs.
Each pair set is enumerated implicitly (a pair index is decoded arithmetically
into two item indices), so there is no rejection loop, no duplicate and no item
paired with itself, and drawing 10^5 pairs from 10^6 items takes milliseconds.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["sample_pairs", "count_pairs"]


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    return labels


class _Groups:
    """Items sorted by label: ``order[starts[g]:ends[g]]`` are the items of group g."""

    def __init__(self, labels: np.ndarray):
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        self.order = np.argsort(inverse, kind="stable").astype(np.int64)
        self.counts = counts.astype(np.int64)
        self.ends = np.cumsum(self.counts)
        self.starts = self.ends - self.counts
        self.n = int(labels.size)
        # Same pairs: c*(c-1)/2 per group.
        self.same_per_group = self.counts * (self.counts - 1) // 2
        self.n_same = int(self.same_per_group.sum())
        self.n_different = self.n * (self.n - 1) // 2 - self.n_same


def count_pairs(labels) -> tuple[int, int]:
    """Number of distinct unordered (same, different) pairs the labels allow."""
    groups = _Groups(_check_labels(labels))
    return groups.n_same, groups.n_different


def _decode_triangle(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Invert ``r = j*(j-1)/2 + i`` (0 <= i < j) for int64 arrays."""
    j = np.floor((1.0 + np.sqrt(1.0 + 8.0 * r.astype(np.float64))) / 2.0).astype(np.int64)
    # Float rounding can put j off by one for very large r; correct it exactly.
    j = np.where(j * (j - 1) // 2 > r, j - 1, j)
    j = np.where((j + 1) * j // 2 <= r, j + 1, j)
    i = r - j * (j - 1) // 2
    return i, j


def _draw(rng: np.random.Generator, population: int, size: int) -> np.ndarray:
    """``size`` distinct integers in ``[0, population)``, in random order."""
    if size == 0:
        return np.empty(0, dtype=np.int64)
    return rng.choice(population, size=size, replace=False).astype(np.int64)


def _same_pairs(groups: _Groups, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cum = np.cumsum(groups.same_per_group)
    g = np.searchsorted(cum, k, side="right")
    r = k - (cum[g] - groups.same_per_group[g])
    i, j = _decode_triangle(r)
    start = groups.starts[g]
    return groups.order[start + i], groups.order[start + j]


def _different_pairs(groups: _Groups, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # In label-sorted order, position p pairs with every position q >= end of
    # its own group; that enumerates each different pair exactly once.
    group_of_pos = np.repeat(np.arange(groups.counts.size), groups.counts)
    first_partner = groups.ends[group_of_pos]
    per_pos = groups.n - first_partner
    cum = np.cumsum(per_pos)
    p = np.searchsorted(cum, k, side="right")
    q = first_partner[p] + (k - (cum[p] - per_pos[p]))
    return groups.order[p], groups.order[q]


def sample_pairs(
    labels, n_pairs: int, seed: int, same_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw distinct pairs of items from integer identity labels.

    ``round(n_pairs * same_fraction)`` pairs are same-identity and the rest
    different-identity. If the labels allow fewer pairs of one kind, the other
    kind makes up the difference where it can; if they allow fewer than
    ``n_pairs`` pairs in all, every possible pair is returned (a warning is
    logged in both cases).

    Returns ``(idx_a, idx_b, same)``: int64 item indices into ``labels`` and a
    bool array, shuffled together. No pair repeats (in either order) and no
    item is paired with itself; which item comes first is random. The result
    depends only on ``labels``, ``n_pairs``, ``same_fraction`` and ``seed``.
    """
    labels = _check_labels(labels)
    n_pairs = int(n_pairs)
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    if not 0.0 <= same_fraction <= 1.0:
        raise ValueError(f"same_fraction must be in [0, 1], got {same_fraction}")

    groups = _Groups(labels)
    n_same = min(int(round(n_pairs * same_fraction)), groups.n_same)
    n_diff = min(n_pairs - n_same, groups.n_different)
    n_same = min(n_pairs - n_diff, groups.n_same)  # top up same if different ran out
    if n_same + n_diff < n_pairs:
        logger.warning(
            "asked for %d pairs but %d items allow only %d distinct pairs; returning all of them",
            n_pairs, labels.size, n_same + n_diff,
        )
    elif n_pairs and abs(n_same - n_pairs * same_fraction) >= 1:
        logger.warning(
            "asked for a same fraction of %.3f but labels allow only %d same and %d "
            "different pairs; drawing %d same + %d different",
            same_fraction, groups.n_same, groups.n_different, n_same, n_diff,
        )

    rng = np.random.default_rng(seed)
    same_a, same_b = _same_pairs(groups, _draw(rng, groups.n_same, n_same))
    diff_a, diff_b = _different_pairs(groups, _draw(rng, groups.n_different, n_diff))

    idx_a = np.concatenate([same_a, diff_a]).astype(np.int64)
    idx_b = np.concatenate([same_b, diff_b]).astype(np.int64)
    same = np.concatenate([np.ones(n_same, bool), np.zeros(n_diff, bool)])

    swap = rng.random(idx_a.size) < 0.5
    idx_a, idx_b = np.where(swap, idx_b, idx_a), np.where(swap, idx_a, idx_b)
    perm = rng.permutation(idx_a.size)
    return idx_a[perm], idx_b[perm], same[perm]
