"""Hard negatives: for an anchor, the other-person faces the model finds closest.

Works on embeddings and integer labels only, so it is tested without images.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hard_negative_pairs"]


def hard_negative_pairs(embeddings, labels, n_pairs: int, seed: int, top_k: int = 5,
                        chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` different-person pairs, each an anchor and one of its ``top_k``
    most similar faces of another person (cosine similarity of the rows).

    Anchors are drawn at random (without replacement while possible). Returns
    ``(idx_a, idx_b)`` int64 arrays with ``labels[idx_a] != labels[idx_b]``.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    if x.ndim != 2 or labels.shape != (len(x),):
        raise ValueError(f"need (N, d) embeddings and N labels, got {x.shape} and {labels.shape}")
    if np.unique(labels).size < 2:
        raise ValueError("hard negatives need at least two people")
    n = len(x)
    rng = np.random.default_rng(seed)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    anchors = rng.permutation(np.resize(rng.permutation(n), n_pairs)) if n_pairs > n else rng.choice(n, n_pairs, replace=False)
    anchors = anchors.astype(np.int64)
    k = max(1, min(top_k, n - 1))
    partners = np.empty(len(anchors), dtype=np.int64)
    for start in range(0, len(anchors), chunk):
        rows = anchors[start:start + chunk]
        sims = x[rows] @ x.T
        sims[labels[rows][:, None] == labels[None, :]] = -np.inf
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        pick = nearest[np.arange(len(rows)), rng.integers(0, k, len(rows))]
        # With fewer than k other-person faces some picks can be masked ones: take the best instead.
        bad = ~np.isfinite(sims[np.arange(len(rows)), pick])
        pick[bad] = np.argmax(sims[bad], axis=1)
        partners[start:start + len(rows)] = pick
    return anchors, partners
