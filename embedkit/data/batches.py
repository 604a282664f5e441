"""Identity batches for losses that take person labels (triplet): P people x K faces each.

Works on integer labels only, so it is tested without images. Label
convention: equal labels are the same person.
"""

from __future__ import annotations

import numpy as np

__all__ = ["identity_batches"]


def identity_batches(labels, n_batches: int, batch_size: int, per_person: int, seed: int) -> list[np.ndarray]:
    """``n_batches`` batches of item indices, each ``batch_size // per_person`` people x up to ``per_person`` faces.

    Only people with at least two faces are drawn (a batch needs positives);
    a person's faces are drawn without replacement (all of them when fewer
    than ``per_person``). People are drawn without replacement within a batch
    and cycled through in a fresh random order across batches, so every such
    person is seen before any is seen twice. Deterministic in ``seed``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if per_person < 2:
        raise ValueError(f"per_person must be >= 2, got {per_person}")
    people, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(counts >= 2)
    per_batch = max(2, batch_size // per_person)
    if eligible.size < 2:
        raise ValueError("identity batches need at least two people with two or more faces")
    per_batch = min(per_batch, eligible.size)
    members = [np.flatnonzero(inverse == g) for g in range(people.size)]
    rng = np.random.default_rng(seed)
    queue: list[int] = []
    batches = []
    for _ in range(n_batches):
        chosen: list[int] = []
        while len(chosen) < per_batch:
            if not queue:
                queue = rng.permutation(eligible).tolist()
            g = queue.pop()
            if g not in chosen:
                chosen.append(g)
        batch = [rng.choice(members[g], size=min(per_person, members[g].size), replace=False) for g in chosen]
        batches.append(np.concatenate(batch).astype(np.int64))
    return batches
