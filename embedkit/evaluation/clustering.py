"""Clustering quality: BCubed and pairwise precision, recall and F against true identities.

BCubed (Bagga and Baldwin, 1998; Amigo et al., 2009) scores each item: its
precision is the share of its cluster that is its own person, its recall the
share of its person that is in its cluster; both are averaged over items.
Pairwise scores count pairs of items put together (precision: of the pairs
clustered together, how many are one person; recall: of the same-person
pairs, how many are together). Items left unclustered count as singletons.
"""

from __future__ import annotations

import numpy as np


def _contingency(truth, predicted) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    truth = np.unique(np.asarray(truth), return_inverse=True)[1]
    predicted = np.unique(np.asarray(predicted), return_inverse=True)[1]
    joint = truth.astype(np.int64) * (int(predicted.max()) + 1) + predicted
    _, joint_idx, joint_counts = np.unique(joint, return_inverse=True, return_counts=True)
    true_sizes = np.bincount(truth)
    pred_sizes = np.bincount(predicted)
    return truth, predicted, joint_counts[joint_idx], true_sizes, pred_sizes


def _f(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def bcubed_items(truth, predicted) -> tuple[np.ndarray, np.ndarray]:
    """Each item's BCubed precision and recall (their means are the BCubed scores)."""
    truth, predicted, together, true_sizes, pred_sizes = _contingency(truth, predicted)
    return together / pred_sizes[predicted], together / true_sizes[truth]


def clustering_report(truth, predicted) -> dict:
    """BCubed and pairwise precision/recall/F of cluster labels ``predicted`` against ``truth``.

    Give each unclustered item a label of its own (e.g. ``-1 - i``) so it counts as a singleton.
    """
    truth, predicted, together, true_sizes, pred_sizes = _contingency(truth, predicted)
    n = len(truth)
    if n == 0:
        raise ValueError("no items to score")
    precision = float(np.mean(together / pred_sizes[predicted]))
    recall = float(np.mean(together / true_sizes[truth]))
    joint = np.unique(truth.astype(np.int64) * (len(pred_sizes)) + predicted, return_counts=True)[1]
    pairs_together = float((joint * (joint - 1) / 2).sum())
    pairs_predicted = float((pred_sizes * (pred_sizes - 1) / 2).sum())
    pairs_true = float((true_sizes * (true_sizes - 1) / 2).sum())
    pair_p = pairs_together / pairs_predicted if pairs_predicted else 1.0
    pair_r = pairs_together / pairs_true if pairs_true else 1.0
    true_singletons = true_sizes[truth] == 1
    return {
        "n_items": n, "n_people": int(len(true_sizes)), "n_clusters": int(len(pred_sizes)),
        "bcubed_precision": precision, "bcubed_recall": recall, "bcubed_f": _f(precision, recall),
        "pairwise_precision": pair_p, "pairwise_recall": pair_r, "pairwise_f": _f(pair_p, pair_r),
        "true_singletons": int(true_singletons.sum()),
        "singletons_alone": int((true_singletons & (pred_sizes[predicted] == 1)).sum()),
    }
