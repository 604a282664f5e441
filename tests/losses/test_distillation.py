"""Embedding distillation on hand-computed cases (row i of targets = the teacher's embedding of face i)."""

import numpy as np
import pytest

from embedkit.losses import LOSSES, distillation_loss


def _value(x):
    return float(np.asarray(x))


def test_matching_the_teacher_costs_nothing_whatever_the_length():
    x = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    assert _value(distillation_loss(3.0 * x, x)) == pytest.approx(0.0, abs=1e-6)


def test_loss_is_the_mean_cosine_gap():
    student = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    teacher = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0]], dtype=np.float32)
    # gaps 1 (orthogonal), 2 (opposite), 0 (equal)
    assert _value(distillation_loss(student, teacher)) == pytest.approx(1.0)
    # a margin forgives that much of each face's gap
    assert _value(distillation_loss(student, teacher, margin=0.5)) == pytest.approx((0.5 + 1.5 + 0.0) / 3)


def test_registered_as_a_targets_loss():
    loss = LOSSES["distill"]
    assert loss.inputs == "targets" and loss.margin == 0.0 and loss.function is distillation_loss


def test_triplet_plus_distill_is_the_sum_of_its_terms():
    from embedkit.losses import triplet_distillation_loss, triplet_semihard_loss

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    targets = rng.normal(size=(8, 4)).astype(np.float32)
    labels = [0, 0, 1, 1, 2, 2, 3, 3]
    expected = _value(triplet_semihard_loss(x, labels, 0.3)) + _value(distillation_loss(x, targets))
    assert _value(triplet_distillation_loss(x, labels, targets, 0.3)) == pytest.approx(expected, rel=1e-5)
    assert LOSSES["triplet+distill"].inputs == "labels+targets"
