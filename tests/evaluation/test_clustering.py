"""BCubed and pairwise clustering scores."""

import numpy as np
import pytest

from embedkit.evaluation.clustering import bcubed_items, clustering_report


def test_per_item_bcubed_by_hand_and_their_means_are_the_report():
    truth = ["a", "a", "a", "b", "b"]
    predicted = [0, 0, 1, 1, 1]  # a's third photo is put with b's two
    precision, recall = bcubed_items(truth, predicted)
    assert precision == pytest.approx([1, 1, 1 / 3, 2 / 3, 2 / 3])
    assert recall == pytest.approx([2 / 3, 2 / 3, 1 / 3, 1, 1])
    report = clustering_report(truth, predicted)
    assert report["bcubed_precision"] == pytest.approx(np.mean(precision))
    assert report["bcubed_recall"] == pytest.approx(np.mean(recall))


def test_a_perfect_clustering_scores_one_whatever_its_labels():
    precision, recall = bcubed_items([3, 3, 7], ["x", "x", "y"])
    assert (precision == 1).all() and (recall == 1).all()
