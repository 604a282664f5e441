"""Triplet loss with semi-hard negatives mined inside the batch (Schroff, Kalenichenko and Philbin, CVPR 2015).

Label convention: the loss takes a batch of embeddings ``(N, d)`` and one
integer person label per embedding ``(N,)``; equal labels mean the same person.

===================  ==============================================================
items ``a``, ``p``   same label, ``a != p``: every such (anchor, positive) counts
item ``n``           a different label: a negative for the anchor
semi-hard negative   the closest negative that is still farther from the anchor
                     than the positive (``d(a, n) > d(a, p)``); when the anchor
                     has none, its farthest negative
loss of (a, p)       ``max(0, d(a, p) - d(a, n) + margin)``
===================  ==============================================================

``d`` is the squared Euclidean distance between the embeddings, as in
FaceNet; for unit vectors ``d = 2 - 2 * cos`` lies in ``[0, 4]`` and FaceNet's
margin is 0.2. The result is the mean over all (anchor, positive) pairs of the
batch (0 when the batch holds none). Batches should hold several faces of each
of several people (see :func:`embedkit.data.batches.identity_batches`).
Works on NumPy arrays and tensors of any Keras 3 backend (``keras.ops`` only).
"""

from __future__ import annotations

__all__ = ["triplet_semihard_loss", "TRIPLET_MARGIN"]

TRIPLET_MARGIN = 0.2


def triplet_semihard_loss(embeddings, labels, margin: float = TRIPLET_MARGIN):
    """Mean semi-hard triplet loss of ``(N, d)`` embeddings with ``(N,)`` integer labels."""
    from keras import ops

    x = ops.convert_to_tensor(embeddings, dtype="float32")
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    squares = ops.sum(ops.square(x), axis=1)
    distance = ops.maximum(squares[:, None] + squares[None, :] - 2.0 * ops.matmul(x, ops.transpose(x)), 0.0)
    same = ops.equal(labels[:, None], labels[None, :])
    n = ops.shape(x)[0]
    positive = ops.logical_and(same, ops.logical_not(ops.cast(ops.eye(n), "bool")))
    negative = ops.logical_not(same)

    d_ap = distance[:, :, None]  # (anchor, positive, 1)
    d_an = distance[:, None, :]  # (anchor, 1, negative)
    beyond = ops.logical_and(negative[:, None, :], ops.greater(d_an, d_ap))
    large = ops.max(distance) + 1.0
    semi_hard = ops.min(ops.where(beyond, d_an, large), axis=2)
    farthest = ops.max(ops.where(negative, distance, 0.0), axis=1)
    chosen = ops.where(ops.any(beyond, axis=2), semi_hard, farthest[:, None])

    weight = ops.cast(positive, "float32")
    losses = ops.maximum(distance - chosen + margin, 0.0) * weight
    return ops.sum(losses) / ops.maximum(ops.sum(weight), 1.0)
