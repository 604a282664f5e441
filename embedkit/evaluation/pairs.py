"""Verification pairs: LFW's ``pairs.txt`` and fold-aware pairs from labels.

Label convention: ``same`` is True for two images of the same person.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedkit.data.pairs import sample_pairs

logger = logging.getLogger(__name__)

__all__ = ["LfwPair", "read_lfw_pairs", "sample_identity_pairs"]


@dataclass(frozen=True)
class LfwPair:
    """One LFW pair; paths are relative to the image root, e.g. ``Name/Name_0001.jpg``."""

    path_a: str
    path_b: str
    same: bool
    fold: int


def _image_path(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_lfw_pairs(path) -> list[LfwPair]:
    """Parse LFW's ``pairs.txt``.

    The header is ``n_folds n_per_fold`` (``10 300``); a single number means one
    fold. Each fold is a block of ``2 * n_per_fold`` lines: ``name i j`` for a
    same pair, ``name1 i name2 j`` for a different pair. A pair's fold is the
    index of its block. Raises ``ValueError`` naming the file and line on a
    malformed line or a line count that does not match the header.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    numbered = [(no, line.split()) for no, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise ValueError(f"{path}: empty file, expected a header like '10 300'")

    header_no, header = numbered[0]
    try:
        sizes = [int(x) for x in header]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes = [1, sizes[0]]
    if len(sizes) != 2 or min(sizes) <= 0:
        raise ValueError(
            f"{path}:{header_no}: bad header {' '.join(header)!r}, expected "
            "'n_folds n_pairs_per_class' such as '10 300'"
        )
    n_folds, per_class = sizes
    block = 2 * per_class

    body = numbered[1:]
    if len(body) != n_folds * block:
        where = body[-1][0] if body else header_no
        raise ValueError(
            f"{path}:{where}: header says {n_folds} folds x {block} pairs = "
            f"{n_folds * block} lines, found {len(body)}"
        )

    pairs = []
    for k, (no, fields) in enumerate(body):
        try:
            if len(fields) == 3:
                name, i, j = fields
                pair = LfwPair(_image_path(name, i), _image_path(name, j), True, k // block)
            elif len(fields) == 4:
                name_a, i, name_b, j = fields
                pair = LfwPair(_image_path(name_a, i), _image_path(name_b, j), False, k // block)
            else:
                raise ValueError(f"expected 3 or 4 fields, got {len(fields)}")
        except ValueError as exc:
            raise ValueError(
                f"{path}:{no}: malformed pair line {' '.join(fields)!r} ({exc}); expected "
                "'name i j' (same person) or 'name1 i name2 j' (different people)"
            ) from None
        pairs.append(pair)
    logger.debug("read %d pairs in %d folds from %s", len(pairs), n_folds, path)
    return pairs


def _assign_identity_folds(counts: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold for each identity, balancing item counts (largest identity first)."""
    order = rng.permutation(counts.size)
    order = order[np.argsort(-counts[order], kind="stable")]
    heap = [(0, f) for f in range(n_folds)]
    fold_of = np.empty(counts.size, dtype=np.int64)
    for g in order:
        load, f = heapq.heappop(heap)
        fold_of[g] = f
        heapq.heappush(heap, (load + int(counts[g]), f))
    return fold_of


def sample_identity_pairs(
    labels, n_pairs: int, seed: int, n_folds: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Balanced verification pairs with identity-disjoint folds, from integer labels.

    Each identity is assigned to one fold (folds balanced by item count); each
    fold gets ``n_pairs / n_folds`` pairs, half same where possible, drawn with
    :func:`embedkit.data.pairs.sample_pairs` among that fold's items only, so no
    person appears in two folds. A pair's fold is the fold of its first item's
    identity (both items are in it).

    With fewer than ``2 * n_folds`` identities disjoint folds are impossible; the
    pairs are then drawn from all items and spread over folds stratified by
    ``same`` (a warning is logged).

    Returns ``(idx_a, idx_b, same, fold)``: int64, int64, bool, int64 arrays.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")

    rng = np.random.default_rng(seed)
    identities, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)

    if identities.size < 2 * n_folds:
        logger.warning(
            "%d identities cannot fill %d identity-disjoint folds; folds will share people",
            identities.size, n_folds,
        )
        idx_a, idx_b, same = sample_pairs(labels, n_pairs, seed=int(rng.integers(2**63)))
        fold = np.empty(idx_a.size, dtype=np.int64)
        for value in (True, False):
            where = np.flatnonzero(same == value)
            fold[where] = (np.arange(where.size) + rng.integers(n_folds)) % n_folds
        return idx_a, idx_b, same, fold

    fold_of_identity = _assign_identity_folds(counts, n_folds, rng)
    item_fold = fold_of_identity[inverse]
    quotas = np.full(n_folds, n_pairs // n_folds)
    quotas[: n_pairs % n_folds] += 1
    fold_seeds = rng.integers(2**63, size=n_folds)

    parts = []
    for f in range(n_folds):
        members = np.flatnonzero(item_fold == f)
        a, b, same = sample_pairs(labels[members], int(quotas[f]), seed=int(fold_seeds[f]))
        parts.append((members[a], members[b], same, np.full(a.size, f, dtype=np.int64)))
    idx_a, idx_b, same, fold = (np.concatenate(x) for x in zip(*parts))
    if idx_a.size and abs(same.mean() - 0.5) > 0.01:
        logger.warning("pairs are %.1f%% same (labels limit same pairs per fold)", 100 * same.mean())
    return idx_a, idx_b, same, fold
