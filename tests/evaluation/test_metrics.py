"""Verification, retrieval and group metrics, and the ROC plot."""

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from embedkit.evaluation.metrics import (
    best_threshold,
    fold_verdicts,
    group_report,
    retrieval_report,
    roc,
    verification_report,
)
from embedkit.evaluation.plots import plot_roc

REPORT_KEYS = {
    "accuracy", "accuracy_std", "fold_accuracies", "auc", "eer", "eer_threshold",
    "tar_at_far_1e-2", "tar_at_far_1e-3", "threshold", "n_pairs", "n_folds",
}

# Hand-worked case: ranked scores with labels 1 1 0 1 0 0.
HAND_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
HAND_SAME = np.array([1, 1, 0, 1, 0, 0])


def _noisy(n=4000, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    scores = rng.normal(np.where(same, 0.6, 0.2), 0.2)
    if ties:
        scores = np.round(scores, 2)
    return scores, same


def test_separable_scores_are_perfect():
    rng = np.random.default_rng(1)
    same = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    scores = np.where(same, rng.uniform(0.6, 1.0, 600), rng.uniform(-0.2, 0.4, 600))
    report = verification_report(scores, same)
    assert report["accuracy"] == 1.0 and report["accuracy_std"] == 0.0
    assert report["auc"] == 1.0
    assert report["eer"] == 0.0
    assert report["tar_at_far_1e-2"] == report["tar_at_far_1e-3"] == 1.0
    assert scores[~same].max() < report["threshold"] <= scores[same].min()
    assert scores[~same].max() < report["eer_threshold"] <= scores[same].min()


def test_hand_computed_case():
    fpr, tpr, thresholds = roc(HAND_SCORES, HAND_SAME)
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_array_equal(thresholds, [np.inf, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])

    # Cutting below 0.8 or below 0.6 both get 5 of 6 right; the higher cut wins.
    threshold, accuracy = best_threshold(HAND_SCORES, HAND_SAME)
    assert threshold == pytest.approx(0.75)
    assert accuracy == pytest.approx(5 / 6)

    report = verification_report(HAND_SCORES, HAND_SAME, folds=[0, 1, 0, 1, 0, 1])
    assert report["auc"] == pytest.approx(8 / 9)  # 8 of 9 (same, different) pairs ordered right
    # At 0.7 one different pair of three is accepted and one same pair of three rejected.
    assert report["eer"] == pytest.approx(1 / 3)
    assert report["eer_threshold"] == pytest.approx(0.7)
    assert report["tar_at_far_1e-2"] == pytest.approx(2 / 3)
    # Fold 0 = {0.9 s, 0.7 d, 0.5 d}; fold 1 = {0.8 s, 0.6 s, 0.4 d}.
    # Train on fold 1 -> cut between 0.6 and 0.4 (0.5) -> fold 0: 0.9 ok, 0.7 wrong, 0.5 wrong.
    # Train on fold 0 -> cut between 0.9 and 0.7 (0.8) -> fold 1: 0.8 ok, 0.6 wrong, 0.4 ok.
    assert report["fold_accuracies"] == pytest.approx([1 / 3, 2 / 3])
    assert report["accuracy"] == pytest.approx(0.5)
    assert report["accuracy_std"] == pytest.approx(1 / 6)
    assert report["n_pairs"] == 6 and report["n_folds"] == 2


def test_reversed_scores_have_zero_auc():
    same = np.array([1, 1, 0, 0])
    assert verification_report([0.1, 0.2, 0.8, 0.9], same, folds=[0, 1, 0, 1])["auc"] == 0.0


@pytest.mark.parametrize("ties", [False, True])
def test_roc_and_auc_agree_with_sklearn(ties):
    scores, same = _noisy(ties=ties)
    fpr, tpr, thresholds = roc(scores, same)
    ref_fpr, ref_tpr, ref_thr = roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_allclose(thresholds[1:], ref_thr[1:])
    report = verification_report(scores, same)
    assert report["auc"] == pytest.approx(roc_auc_score(same, scores), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_best_threshold_matches_brute_force(ties):
    scores, same = _noisy(n=800, seed=2, ties=ties)
    candidates = np.r_[np.unique(scores), scores.max() + 1]
    brute = max(np.mean((scores >= t) == same) for t in candidates)
    threshold, accuracy = best_threshold(scores, same)
    assert accuracy == pytest.approx(brute)
    assert np.mean((scores >= threshold) == same) == pytest.approx(accuracy)


def _balanced_accuracy(scores, same, t):
    accept = scores >= t
    return (np.mean(accept[same]) + np.mean(~accept[~same])) / 2


def test_balanced_threshold_matches_brute_force_and_ignores_the_class_ratio():
    # One same pair per five different ones, as a validation folder of a few photos per person gives:
    # plain accuracy leans towards "different"; the balanced threshold is the one a 1:1 test set wants.
    rng = np.random.default_rng(5)
    same = np.r_[np.ones(500, bool), np.zeros(2500, bool)]
    scores = np.where(same, rng.normal(0.6, 0.12, same.size), rng.normal(0.1, 0.12, same.size))
    candidates = np.r_[np.unique(scores), scores.max() + 1]
    brute = max(_balanced_accuracy(scores, same, t) for t in candidates)
    threshold, accuracy = best_threshold(scores, same, balanced=True)
    assert accuracy == pytest.approx(brute)
    assert _balanced_accuracy(scores, same, threshold) == pytest.approx(accuracy)
    plain, _ = best_threshold(scores, same)
    assert plain > threshold  # the imbalance pushes the plain rule up
    # On a 1:1 draw of the same two distributions the balanced threshold is the better one.
    test_same = np.r_[np.ones(20000, bool), np.zeros(20000, bool)]
    test = np.where(test_same, rng.normal(0.6, 0.12, test_same.size), rng.normal(0.1, 0.12, test_same.size))
    assert np.mean((test >= threshold) == test_same) > np.mean((test >= plain) == test_same)
    with pytest.raises(ValueError, match="same and different"):
        best_threshold([0.2, 0.3], [True, True], balanced=True)


def test_tar_at_far_and_eer_match_brute_force():
    scores, same = _noisy(n=6000, seed=3)
    report = verification_report(scores, same)
    pos, neg = scores[same], scores[~same]
    far = np.array([np.mean(neg >= t) for t in np.unique(scores)])
    tar = np.array([np.mean(pos >= t) for t in np.unique(scores)])
    for target in (1e-2, 1e-3):
        assert report[f"tar_at_far_{target:.0e}".replace("e-0", "e-")] == pytest.approx(
            tar[far <= target].max()
        )
    frr = 1 - tar
    # The EER lies between FAR and FRR where they cross.
    k = np.argmin(np.abs(far - frr))
    assert report["eer"] == pytest.approx((far[k] + frr[k]) / 2, abs=2e-3)


def test_cross_validation_uses_given_folds():
    scores, same = _noisy(n=1200, seed=4)
    folds = np.arange(1200) % 4 + 100
    report = verification_report(scores, same, folds=folds)
    assert report["n_folds"] == 4 and len(report["fold_accuracies"]) == 4
    expected = []
    for f in (100, 101, 102, 103):
        test = folds == f
        t, _ = best_threshold(scores[~test], same[~test])
        expected.append(np.mean((scores[test] >= t) == same[test]))
    assert report["fold_accuracies"] == pytest.approx(expected)
    assert report["accuracy"] == pytest.approx(np.mean(expected))
    # The same verdicts pair by pair (what McNemar's test between two models needs).
    correct = fold_verdicts(scores, same, folds)
    assert [correct[folds == f].mean() for f in (100, 101, 102, 103)] == pytest.approx(expected)
    with pytest.raises(ValueError, match="one id per pair"):
        fold_verdicts(scores, same, folds[:-1])


def test_report_is_plain_json_and_reproducible():
    scores, same = _noisy(n=1000, seed=5)
    report = verification_report(scores, same, n_folds=10)
    assert set(report) == REPORT_KEYS
    assert report == json.loads(json.dumps(report))
    assert all(type(v) in (float, int, list) for v in report.values())
    assert report["n_folds"] == 10 and report["n_pairs"] == 1000
    assert report == verification_report(scores, same, n_folds=10)
    assert 0.75 < report["accuracy"] < 0.95


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        verification_report([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="same and different"):
        roc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        best_threshold([0.1, np.nan], [1, 0])


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_retrieval_hand_case():
    embeddings = _unit([
        [1.0, 0.0, 0.0],    # 0 label A: nearest is 1 (A)
        [0.95, 0.3, 0.0],   # 1 label A: nearest is 0 (A)
        [0.0, 1.0, 0.0],    # 2 label B: nearest is 3 (B)
        [0.8, 0.6, 0.0],    # 3 label B: ranks 1 (A), 0 (A), then 2 (B)
        [0.0, 0.0, 1.0],    # 4 label C, alone: not a query, still in the gallery
    ])
    labels = np.array([0, 0, 1, 1, 2])
    report = retrieval_report(embeddings, labels, ks=(1, 2, 3, 10))
    assert report["n_queries"] == 4 and report["n_items"] == 5
    assert report["rank1"] == report["recall@1"] == pytest.approx(3 / 4)
    assert report["recall@2"] == pytest.approx(3 / 4)
    assert report["recall@3"] == 1.0
    assert report["recall@10"] == 1.0


def test_retrieval_matches_brute_force():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 150, size=600)
    centres = rng.normal(size=(150, 32))
    embeddings = _unit(centres[labels] + rng.normal(scale=1.2, size=(600, 32)))
    report = retrieval_report(embeddings, labels)

    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, -np.inf)
    ranked = np.argsort(-sims, axis=1)[:, :10]
    has_mate = np.bincount(labels)[labels] >= 2
    hits = labels[ranked] == labels[:, None]
    for k in (1, 5, 10):
        expected = hits[has_mate, :k].any(axis=1).mean()
        assert report[f"recall@{k}"] == pytest.approx(expected)
    assert report["n_queries"] == has_mate.sum()
    assert 0.0 < report["rank1"] < 1.0
    assert report == json.loads(json.dumps(report))


def test_retrieval_duplicates_do_not_count_self():
    embeddings = _unit([[1, 0], [1, 0], [0, 1]])
    report = retrieval_report(embeddings, np.array([0, 1, 1]), ks=(1,))
    # Items 1 and 2 query each other; item 1's top hit is item 0 (identical vector, other label).
    assert report["n_queries"] == 2
    assert report["rank1"] == pytest.approx(0.5)


def test_group_report_counts():
    scores = np.array([0.9, 0.2, 0.8, 0.7, 0.3, 0.6, 0.1, 0.9])
    same = np.array([1, 1, 0, 0, 1, 0, 0, 0], bool)
    group_a = np.array(["f", "f", "f", "f", "m", "m", "f", "m"])
    group_b = np.array(["f", "f", "f", "f", "m", "m", "m", "f"])
    report = group_report(scores, same, group_a, group_b, threshold=0.5)
    assert report["threshold"] == 0.5
    assert report["groups"]["f"] == {
        "n_same": 2, "n_different": 2, "false_matches": 2, "false_non_matches": 1,
        "fmr": 1.0, "fnmr": 0.5,
    }
    assert report["groups"]["m"] == {
        "n_same": 1, "n_different": 1, "false_matches": 1, "false_non_matches": 1,
        "fmr": 1.0, "fnmr": 1.0,
    }
    assert report["groups"]["mixed"] == {
        "n_same": 0, "n_different": 2, "false_matches": 1, "false_non_matches": 0,
        "fmr": 0.5, "fnmr": None,
    }
    assert list(report["groups"]) == ["f", "m", "mixed"]
    assert report["overall"]["false_matches"] == 4 and report["overall"]["n_different"] == 5
    assert report == json.loads(json.dumps(report))


def test_plot_roc_writes_png_without_touching_pyplot(tmp_path):
    import matplotlib

    backend = matplotlib.rcParams["backend"]
    scores, same = _noisy()
    fpr, tpr, _ = roc(scores, same)
    path = plot_roc({"model": (fpr, tpr), "chance-ish": ([0, 0.5, 1], [0, 0.5, 1])},
                    tmp_path / "out" / "roc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000
    assert matplotlib.rcParams["backend"] == backend


def test_mcnemar_exact_counts_and_verdicts():
    from embedkit.evaluation.metrics import mcnemar

    before = np.array([True] * 90 + [False] * 10)
    after = np.array([True] * 100)
    result = mcnemar(before, after)
    # 10 discordant pairs, all for 'after': p = 2 * 0.5**10.
    assert result["only_before_right"] == 0 and result["only_after_right"] == 10
    assert result["p_value"] == pytest.approx(2 / 1024)
    assert result["verdict"] == "better"
    assert mcnemar(after, before)["verdict"] == "worse"
    # 3 against 2: far from significant.
    a = np.array([True, True, True, False, False, True])
    b = np.array([False, False, False, True, True, True])
    assert mcnemar(a, b)["p_value"] == pytest.approx(1.0)
    assert mcnemar(a, b)["verdict"] == "no change"
    assert mcnemar(a, a)["p_value"] == 1.0


def test_small_sample_warnings():
    from embedkit.evaluation.metrics import small_sample_warnings

    assert small_sample_warnings(1500, 1500, 50) == []
    warnings = small_sample_warnings(300, 300, 5)
    assert any("TAR @ FAR 1e-3" in w for w in warnings) and any("5 test people" in w for w in warnings)
