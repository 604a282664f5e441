"""Contrastive loss (Hadsell, Chopra and LeCun, CVPR 2006).

Label convention:

=========  ===============  ==========================================
``same``   meaning          loss for the pair at distance ``d``
=========  ===============  ==========================================
1 (True)   same person      ``d**2 / 2``: pulled together
0 (False)  different people ``max(0, margin - d)**2 / 2``: pushed apart
                            until at least ``margin`` apart
=========  ===============  ==========================================

``d`` is the Euclidean distance between the two embeddings. For unit-length
embeddings ``d = sqrt(2 - 2 * cos)`` lies in ``[0, 2]``, so a margin near 1
(cosine 0.5) asks different people to be at least roughly orthogonal.
The result is the mean over pairs. Works on NumPy arrays and on tensors
of any Keras 3 backend (it only uses ``keras.ops``).
"""

from __future__ import annotations

__all__ = ["contrastive_loss", "contrastive_loss_from_distance"]

EPSILON = 1e-12


def contrastive_loss_from_distance(distance, same, margin: float = 1.0):
    """Mean contrastive loss from pair distances ``(N,)`` and labels ``(N,)`` (1 = same)."""
    from keras import ops

    distance = ops.convert_to_tensor(distance, dtype="float32")
    same = ops.cast(ops.convert_to_tensor(same), "float32")
    pull = same * ops.square(distance)
    push = (1.0 - same) * ops.square(ops.maximum(margin - distance, 0.0))
    return ops.mean(0.5 * (pull + push))


def contrastive_loss(embeddings_a, embeddings_b, same, margin: float = 1.0):
    """Mean contrastive loss of pairs of embeddings ``(N, d)`` with labels ``(N,)`` (1 = same).

    The distance's gradient is kept finite at ``d = 0`` (identical embeddings).
    """
    from keras import ops

    a = ops.convert_to_tensor(embeddings_a, dtype="float32")
    b = ops.convert_to_tensor(embeddings_b, dtype="float32")
    distance = ops.sqrt(ops.maximum(ops.sum(ops.square(a - b), axis=-1), EPSILON))
    return contrastive_loss_from_distance(distance, same, margin)
