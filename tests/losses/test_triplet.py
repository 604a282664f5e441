"""Semi-hard triplet loss on hand-computed cases (equal labels = same person)."""

import numpy as np
import pytest

from embedkit.losses import LOSSES, triplet_semihard_loss


def _value(x):
    return float(np.asarray(x))


def _unit(*angles):
    """Unit vectors in the plane at these angles (radians)."""
    return np.array([[np.cos(a), np.sin(a)] for a in angles], dtype=np.float32)


def test_well_separated_people_cost_nothing():
    x = _unit(0.0, 0.05, np.pi, np.pi + 0.05)
    assert _value(triplet_semihard_loss(x, [0, 0, 1, 1], margin=0.2)) == pytest.approx(0.0)


def test_semi_hard_negative_is_the_closest_one_beyond_the_positive():
    # Anchor and positive 1 apart (squared); negatives at squared distances 0.5 (harder than the
    # positive: not semi-hard), 1.1 (semi-hard) and 3.0 from the anchor, on a line.
    x = np.array([[0.0], [1.0], [np.sqrt(0.5)], [np.sqrt(1.1)], [np.sqrt(3.0)]], dtype=np.float32)
    labels = [0, 0, 1, 2, 3]
    # Only (0, 1) and (1, 0) are positive pairs. For anchor 0: d_ap = 1, semi-hard d_an = 1.1,
    # loss = max(0, 1 - 1.1 + 0.2) = 0.1. For anchor 1 (at 1.0): d_ap = 1, negatives at
    # (1 - 0.707)^2 = 0.0858, (1 - 1.0488)^2 = 0.0024, (1.732 - 1)^2 = 0.536: none beyond 1,
    # so its farthest, 0.536: loss = 1 - 0.536 + 0.2 = 0.664.
    far = (np.sqrt(3.0) - 1.0) ** 2
    expected = (0.1 + (1.0 - far + 0.2)) / 2
    assert _value(triplet_semihard_loss(x, labels, margin=0.2)) == pytest.approx(expected, abs=1e-5)


def test_a_batch_without_positives_costs_nothing():
    x = _unit(0.0, 1.0, 2.0)
    assert _value(triplet_semihard_loss(x, [0, 1, 2])) == 0.0


def test_gradient_pulls_the_positive_closer():
    import tensorflow as tf

    x = tf.Variable(_unit(0.0, 1.0, 0.6))
    with tf.GradientTape() as tape:
        value = triplet_semihard_loss(x, tf.constant([0, 0, 1]), margin=0.2)
    grad = tape.gradient(value, x).numpy()
    assert _value(value) > 0
    # A small step against the gradient lowers the loss.
    after = triplet_semihard_loss(x.numpy() - 0.05 * grad, [0, 0, 1], margin=0.2)
    assert _value(after) < _value(value)


def test_registered_with_its_inputs_and_margin():
    assert LOSSES["triplet"].inputs == "labels" and LOSSES["triplet"].margin == pytest.approx(0.2)
    assert LOSSES["contrastive"].inputs == "pairs" and LOSSES["contrastive"].margin == pytest.approx(1.4)
