"""Embedding distillation: a student embedding pulled onto a teacher's embedding of the same face.

Used to adapt an encoder to a domain shift that can be simulated (low
resolution, a mask): the student sees the shifted face, the teacher (the
starting model, frozen) the clean one, so the student learns to give a
degraded face the embedding the pretrained model gives the clean face
(cross-resolution distillation, e.g. Ge et al., "Low-resolution face
recognition in the wild via selective knowledge distillation", 2018).

Label convention:

=================  ==========================================================
``embeddings[i]``  the student's embedding of face ``i`` (shifted)
``targets[i]``     the teacher's embedding of the same face ``i`` (clean)
loss of face i     ``max(0, 1 - cos(embeddings[i], targets[i]) - margin)``
=================  ==========================================================

Both sides are L2-normalised first, so ``1 - cos`` lies in ``[0, 2]``; the
default margin 0 asks for the teacher's direction exactly. The result is the
mean over faces. Works on NumPy arrays and tensors of any Keras 3 backend
(``keras.ops`` only).
"""

from __future__ import annotations

__all__ = ["distillation_loss", "DISTILLATION_MARGIN"]

DISTILLATION_MARGIN = 0.0
EPSILON = 1e-12


def _unit(x):
    from keras import ops

    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), EPSILON))


def distillation_loss(embeddings, targets, margin: float = DISTILLATION_MARGIN):
    """Mean ``max(0, 1 - cos - margin)`` between rows of ``embeddings`` and ``targets`` ``(N, d)``."""
    from keras import ops

    a = _unit(ops.convert_to_tensor(embeddings, dtype="float32"))
    b = _unit(ops.convert_to_tensor(targets, dtype="float32"))
    gap = 1.0 - ops.sum(a * b, axis=-1)
    return ops.mean(ops.maximum(gap - margin, 0.0))
