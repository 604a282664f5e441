"""ArcFace on hand-computed cases (classes 0..K-1 index the centres)."""

import math

import numpy as np
import pytest

from embedkit.losses import LOSSES, arcface_loss


def _value(x):
    return float(np.asarray(x))


def _unit(*angles):
    return np.array([[np.cos(a), np.sin(a)] for a in angles], dtype=np.float32)


def _softmax_loss(logits, own):
    logits = np.asarray(logits, dtype=np.float64)
    return -(logits[own] - np.log(np.sum(np.exp(logits))))


def test_margin_is_added_to_the_angle_to_the_own_centre():
    centres = _unit(0.0, 1.0)
    x = _unit(0.7)  # 0.7 rad from centre 0, 0.3 rad from centre 1
    expected = _softmax_loss([30 * math.cos(0.7 + 0.5), 30 * math.cos(0.3)], 0)
    assert _value(arcface_loss(x, [0], centres, margin=0.5, scale=30)) == pytest.approx(expected, rel=1e-4)
    # Without a margin it is the plain scaled-cosine softmax; lengths do not matter.
    plain = _softmax_loss([10 * math.cos(0.7), 10 * math.cos(0.3)], 0)
    assert _value(arcface_loss(5 * x, [0], 2 * centres, margin=0.0, scale=10)) == pytest.approx(plain, rel=1e-4)


def test_past_pi_minus_margin_the_own_logit_keeps_falling():
    centres = _unit(0.0, np.pi / 2)
    x = _unit(np.pi - 0.1)  # theta = pi - 0.1 > pi - 0.5
    own = math.cos(np.pi - 0.1) - 0.5 * math.sin(0.5)
    expected = _softmax_loss([30 * own, 30 * math.cos(np.pi / 2 - 0.1)], 0)
    assert _value(arcface_loss(x, [0], centres, margin=0.5, scale=30)) == pytest.approx(expected, rel=1e-4)


def test_mean_over_the_batch_and_registered_as_a_classes_loss():
    centres = _unit(0.0, 2.0, 4.0)
    x = _unit(0.1, 2.2, 3.0)
    one = [_value(arcface_loss(x[i:i + 1], [c], centres)) for i, c in enumerate([0, 1, 2])]
    assert _value(arcface_loss(x, [0, 1, 2], centres)) == pytest.approx(np.mean(one), rel=1e-5)
    assert LOSSES["arcface"].inputs == "classes" and LOSSES["arcface"].margin == 0.5
