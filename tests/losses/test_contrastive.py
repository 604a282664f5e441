"""Contrastive loss on hand-computed cases (1 = same person)."""

import numpy as np
import pytest

from embedkit.losses import contrastive_loss, contrastive_loss_from_distance


def _value(x):
    return float(np.asarray(x))


def test_same_pair_is_half_squared_distance():
    # d = 0.6: 0.5 * 0.36
    assert _value(contrastive_loss_from_distance([0.6], [1], margin=1.0)) == pytest.approx(0.18)


def test_different_pair_inside_margin_is_pushed():
    # d = 0.6, margin 1: 0.5 * (1 - 0.6)^2
    assert _value(contrastive_loss_from_distance([0.6], [0], margin=1.0)) == pytest.approx(0.08)


def test_different_pair_beyond_margin_costs_nothing():
    assert _value(contrastive_loss_from_distance([1.5], [False], margin=1.0)) == pytest.approx(0.0)


def test_mean_over_pairs():
    # (0.18 + 0.08 + 0 + 0.5 * 0.04) / 4
    d = [0.6, 0.6, 1.5, 0.2]
    same = [1, 0, 0, 1]
    assert _value(contrastive_loss_from_distance(d, same, margin=1.0)) == pytest.approx(0.28 / 4)


def test_from_embeddings_uses_euclidean_distance():
    a = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    b = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)  # distance sqrt(2)
    # same: 0.5 * 2 = 1; different with margin 2: 0.5 * (2 - sqrt 2)^2
    expected = (1.0 + 0.5 * (2 - np.sqrt(2)) ** 2) / 2
    assert _value(contrastive_loss(a, b, [1, 0], margin=2.0)) == pytest.approx(expected, rel=1e-5)


def test_identical_embeddings_have_finite_gradient():
    import tensorflow as tf

    a = tf.Variable([[0.6, 0.8]])
    with tf.GradientTape() as tape:
        loss = contrastive_loss(a, tf.constant([[0.6, 0.8]]), [0], margin=1.0)
    grad = tape.gradient(loss, a)
    assert _value(loss) == pytest.approx(0.5, abs=1e-5)
    assert np.all(np.isfinite(grad.numpy()))
