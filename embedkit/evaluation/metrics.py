"""Verification, retrieval and per-group metrics.

Conventions: scores are similarities (higher = more alike); a pair is
predicted "same person" when ``score >= threshold``; ``same`` is True (1) for
pairs of the same person. Every report is a dict of plain Python numbers and
lists, ready for ``json.dumps``.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "roc",
    "roc_auc",
    "best_threshold",
    "verification_report",
    "fold_verdicts",
    "retrieval_report",
    "group_report",
    "mcnemar",
    "small_sample_warnings",
]

# Below these counts a figure rests on too few pairs or people to be read alone.
MIN_IMPOSTORS_FOR_TAR_1E3 = 1000
MIN_TEST_PEOPLE = 10
# McNemar p-values at or above this are reported as "no change".
SIGNIFICANCE = 0.05


def roc_auc(fpr, tpr) -> float:
    """Area under an ROC curve given as points sorted by FPR (trapezoid rule)."""
    x = np.asarray(fpr, dtype=np.float64)
    y = np.asarray(tpr, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def _check_pairs(scores, same) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same)
    if scores.ndim != 1 or same.shape != scores.shape:
        raise ValueError(
            f"scores and same must be 1-D of equal length, got {scores.shape} and {same.shape}"
        )
    if scores.size == 0:
        raise ValueError("no pairs to evaluate")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    if same.dtype != bool:
        if not np.all(np.isin(same, (0, 1))):
            raise ValueError("same must be boolean or 0/1")
        same = same.astype(bool)
    return scores, same


def _sweep(scores: np.ndarray, same: np.ndarray):
    """Cumulative counts over distinct scores, highest first.

    Returns ``(distinct, tp, fp)`` where ``tp[k]``/``fp[k]`` count same/different
    pairs with ``score >= distinct[k - 1]`` (``k = 0``: nothing accepted), so the
    arrays have one more entry than ``distinct``.
    """
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    y = same[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.r_[0, np.cumsum(y)[last_of_run]]
    fp = np.r_[0, (last_of_run + 1) - tp[1:]]
    return s[last_of_run], tp, fp


def _cut_thresholds(distinct: np.ndarray) -> np.ndarray:
    """A threshold for each sweep point that reproduces its decisions.

    Point 0 (accept nothing) gets the next float above the top score; point k
    gets the midpoint between the k-th distinct score and the next lower one,
    so it also separates unseen scores sensibly; the last point gets the lowest
    score.
    """
    hi = distinct[:-1]
    lo = distinct[1:]
    mid = lo + (hi - lo) / 2.0
    mid = np.where(mid > lo, mid, hi)  # adjacent floats: midpoint rounds onto lo
    return np.r_[np.nextafter(distinct[0], np.inf), mid, distinct[-1]]


def roc(scores, same) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve: ``(fpr, tpr, thresholds)``, thresholds decreasing.

    Point k accepts pairs with ``score >= thresholds[k]``; the first point
    (threshold above every score) is ``(0, 0)``, the last is ``(1, 1)``.
    Needs at least one pair of each kind.
    """
    scores, same = _check_pairs(scores, same)
    n_pos = int(same.sum())
    n_neg = same.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC needs same and different pairs, got {n_pos} same and {n_neg} different")
    distinct, tp, fp = _sweep(scores, same)
    return fp / n_neg, tp / n_pos, np.r_[np.inf, distinct]


def best_threshold(scores, same, balanced: bool = False) -> tuple[float, float]:
    """Threshold that maximises accuracy on these pairs, and that accuracy.

    With ``balanced``, each kind of pair weighs the same (the mean of the
    same-pair and different-pair accuracies is maximised, and returned): the
    threshold then does not lean towards "different" because a folder allows
    fewer same-person pairs than different ones (a validation set of a few
    photos per person gives about one same pair in six), and it matches a
    verdict asked without a prior, as on LFW's balanced pairs. On balanced
    pairs both rules agree.

    One sort, O(n log n). Among equally good thresholds the highest is chosen.
    The threshold is placed midway between neighbouring scores (see ``roc``
    for the decision rule).
    """
    scores, same = _check_pairs(scores, same)
    distinct, tp, fp = _sweep(scores, same)
    n_pos = int(same.sum())
    n_neg = same.size - n_pos
    if balanced:
        if n_pos == 0 or n_neg == 0:
            raise ValueError(f"a balanced threshold needs same and different pairs, got {n_pos} same and "
                             f"{n_neg} different")
        correct = (tp / n_pos + (n_neg - fp) / n_neg) / 2.0
    else:
        correct = (tp + (n_neg - fp)) / same.size
    k = int(np.argmax(correct))
    return float(_cut_thresholds(distinct)[k]), float(correct[k])


def _stratified_folds(same: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    folds = np.empty(same.size, dtype=np.int64)
    for value in (True, False):
        where = rng.permutation(np.flatnonzero(same == value))
        folds[where] = np.arange(where.size) % n_folds
    return folds


def _eer(tp: np.ndarray, fp: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """Equal error rate from sweep counts, interpolated where FNR - FPR changes sign.

    The sign test uses integer counts, so exact crossings are found exactly.
    The threshold is the one of the first ROC point with FNR <= FPR.
    """
    n_pos, n_neg = int(tp[-1]), int(fp[-1])
    fnr = (n_pos - tp) / n_pos
    fpr = fp / n_neg
    sign = (n_pos - tp) * n_neg - fp * n_pos  # same sign as fnr - fpr; starts > 0, ends < 0
    k = int(np.argmax(sign <= 0))
    if sign[k] == 0:
        return float(fpr[k]), float(thresholds[k])
    d0, d1 = fnr[k - 1] - fpr[k - 1], fnr[k] - fpr[k]
    t = d0 / (d0 - d1)
    return float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1])), float(thresholds[k])


def _tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """Largest TPR among ROC points with FPR <= far (exact, no interpolation)."""
    return float(tpr[fpr <= far].max())


def verification_report(
    scores, same, folds=None, n_folds: int = 10, seed: int = 0
) -> dict:
    """Pair-verification metrics (the LFW protocol plus ROC summaries).

    Accuracy: for each fold, the accuracy-maximising threshold on the other
    folds is applied to that fold; ``accuracy`` and ``accuracy_std`` are the
    mean and (population) standard deviation over folds. ``folds`` gives
    each pair's fold id (e.g. LFW's); without it, pairs are split into
    ``n_folds`` folds stratified by ``same`` with ``seed``.

    ROC summaries use all pairs: ``auc``; ``eer`` and ``eer_threshold``;
    ``tar_at_far_1e-2`` / ``tar_at_far_1e-3``, the largest true-accept rate
    whose false-accept rate is at most the target; and ``threshold``, the
    best single threshold on all pairs.
    """
    scores, same = _check_pairs(scores, same)
    if folds is None:
        if n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {n_folds}")
        folds = _stratified_folds(same, n_folds, seed)
    folds = np.asarray(folds)
    correct = fold_verdicts(scores, same, folds)  # checks the folds
    fold_accuracies = [correct[folds == f].mean() for f in np.unique(folds)]

    fpr, tpr, thresholds = roc(scores, same)
    _, tp, fp = _sweep(scores, same)
    eer, eer_threshold = _eer(tp, fp, thresholds)
    threshold, _ = best_threshold(scores, same)
    return {
        "accuracy": float(np.mean(fold_accuracies)),
        "accuracy_std": float(np.std(fold_accuracies)),
        "fold_accuracies": [float(a) for a in fold_accuracies],
        "auc": roc_auc(fpr, tpr),
        "eer": eer,
        "eer_threshold": eer_threshold,
        "tar_at_far_1e-2": _tar_at_far(fpr, tpr, 1e-2),
        "tar_at_far_1e-3": _tar_at_far(fpr, tpr, 1e-3),
        "threshold": threshold,
        "n_pairs": int(scores.size),
        "n_folds": len(fold_accuracies),
    }


def fold_verdicts(scores, same, folds) -> np.ndarray:
    """Whether each pair's verdict is right at the threshold best on the other folds (the
    cross-validated accuracy of :func:`verification_report`, pair by pair, e.g. for McNemar's test
    between two models scored on the same pairs). ``folds``: each pair's fold id, at least two."""
    scores, same = _check_pairs(scores, same)
    folds = np.asarray(folds)
    if folds.shape != scores.shape:
        raise ValueError(f"folds must have one id per pair, got {folds.shape} for {scores.shape}")
    fold_ids = np.unique(folds)
    if fold_ids.size < 2:
        raise ValueError("cross-validated accuracy needs at least 2 folds")
    correct = np.zeros(scores.size, dtype=bool)
    for f in fold_ids:
        test = folds == f
        threshold, _ = best_threshold(scores[~test], same[~test])
        correct[test] = (scores[test] >= threshold) == same[test]
    return correct


def retrieval_report(embeddings, labels, ks=(1, 5, 10)) -> dict:
    """Leave-one-out retrieval by cosine similarity.

    Every item whose label occurs at least twice queries all other items
    (items with a unique label stay in the gallery as distractors).
    ``recall@k`` is the fraction of queries with an item of their label among
    their k nearest others; ``rank1`` equals ``recall@1``. Embeddings are
    expected L2-normalised (inner product = cosine); searched exactly with
    FAISS ``IndexFlatIP``.
    """
    import faiss

    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    if x.ndim != 2 or labels.shape != (x.shape[0],):
        raise ValueError(f"need (N, d) embeddings and N labels, got {x.shape} and {labels.shape}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    norms = np.linalg.norm(x, axis=1)
    if x.size and np.max(np.abs(norms - 1.0)) > 1e-3:
        logger.warning("embeddings are not L2-normalised (norms %.3f..%.3f); scores are not cosines",
                       norms.min(), norms.max())

    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    queries = np.flatnonzero(counts[inverse] >= 2)
    report = {"rank1": None, **{f"recall@{k}": None for k in ks},
              "n_queries": int(queries.size), "n_items": int(x.shape[0])}
    if queries.size == 0:
        logger.warning("no label occurs twice; nothing to retrieve")
        return report

    depth = min(max(ks), x.shape[0] - 1)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, found = index.search(x[queries], depth + 1)
    # Drop the query itself wherever it appears (ties can move it off rank 0).
    is_self = found == queries[:, None]
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :depth]
    neighbours = np.take_along_axis(found, keep, axis=1)
    hit = (neighbours >= 0) & (labels[np.maximum(neighbours, 0)] == labels[queries][:, None])
    first_hit = np.where(hit.any(axis=1), np.argmax(hit, axis=1), depth)
    for k in ks:
        report[f"recall@{k}"] = float(np.mean(first_hit < k))
    report["rank1"] = report["recall@1"] if 1 in ks else float(np.mean(first_hit < 1))
    return report


def _rates(scores: np.ndarray, same: np.ndarray, threshold: float) -> dict:
    accept = scores >= threshold
    n_same = int(same.sum())
    n_diff = int(same.size - n_same)
    false_matches = int(np.sum(accept & ~same))
    false_non_matches = int(np.sum(~accept & same))
    return {
        "n_same": n_same,
        "n_different": n_diff,
        "false_matches": false_matches,
        "false_non_matches": false_non_matches,
        "fmr": false_matches / n_diff if n_diff else None,
        "fnmr": false_non_matches / n_same if n_same else None,
    }


def group_report(scores, same, group_a, group_b, threshold: float) -> dict:
    """False-match and false-non-match rates per group at one threshold.

    ``group_a``/``group_b`` give the group (e.g. a demographic label) of each
    pair's two items. A pair counts under its group when both items share
    it, and under ``"mixed"`` otherwise. FMR = different pairs accepted /
    different pairs; FNMR = same pairs rejected / same pairs (``None`` when a
    group has no pairs of that kind). Group names become strings.

    Returns ``{"threshold", "overall": {...}, "groups": {name: {...}}}`` where
    each entry has ``n_same``, ``n_different``, ``false_matches``,
    ``false_non_matches``, ``fmr`` and ``fnmr``.
    """
    scores, same = _check_pairs(scores, same)
    group_a = np.asarray(group_a)
    group_b = np.asarray(group_b)
    if group_a.shape != scores.shape or group_b.shape != scores.shape:
        raise ValueError("group_a and group_b need one entry per pair")
    names = np.where(group_a == group_b, group_a.astype(str), "mixed")
    groups = {}
    for name in sorted(set(names.tolist()), key=lambda n: (n == "mixed", n)):
        mask = names == name
        groups[name] = _rates(scores[mask], same[mask], threshold)
    return {
        "threshold": float(threshold),
        "overall": _rates(scores, same, threshold),
        "groups": groups,
    }


def mcnemar(correct_a, correct_b, alpha: float = SIGNIFICANCE) -> dict:
    """McNemar's exact test of two classifiers' verdicts on the same pairs.

    ``correct_a`` / ``correct_b``: whether A and B got each pair right. Only
    the discordant pairs count: ``only_before_right`` (A right, B wrong) and
    ``only_after_right`` (B right, A wrong); under "no difference" each
    discordant pair goes either way with probability 1/2, so the two-sided
    p-value is the exact binomial tail, doubled (at most 1). ``verdict`` is
    ``"better"`` / ``"worse"`` (B against A) when ``p < alpha``, else
    ``"no change"``.
    """
    from math import comb

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D verdict arrays of equal length, got {a.shape} and {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    tail = sum(comb(n, k) for k in range(min(only_a, only_b) + 1))
    p_value = min(1.0, 2.0 * tail / 2**n) if n else 1.0
    verdict = "no change" if p_value >= alpha else ("better" if only_b > only_a else "worse")
    return {"only_before_right": only_a, "only_after_right": only_b, "n_pairs": int(a.size),
            "p_value": float(p_value), "verdict": verdict}


def small_sample_warnings(n_same: int, n_different: int, n_people: int | None = None) -> list[str]:
    """Plain-language warnings for figures that rest on few pairs or people."""
    warnings = []
    if n_different < MIN_IMPOSTORS_FOR_TAR_1E3:
        warnings.append(f"TAR @ FAR 1e-3 rests on {n_different} different-person pairs (< "
                        f"{MIN_IMPOSTORS_FOR_TAR_1E3}): FAR 1e-3 means fewer than one false accept; read it as "
                        "TAR at zero false accepts")
    if n_people is not None and n_people < MIN_TEST_PEOPLE:
        warnings.append(f"only {n_people} test people (< {MIN_TEST_PEOPLE}): the figures may not carry over to others")
    if n_same < 100:
        warnings.append(f"only {n_same} same-person test pairs: accuracy moves by {100 / max(n_same, 1):.1f} points "
                        "per pair")
    return warnings
