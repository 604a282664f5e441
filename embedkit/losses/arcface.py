"""Additive angular margin loss, ArcFace (Deng, Guo, Xue and Zafeiriou, CVPR 2019).

An identity head: one learnt unit-length centre per training person, and a
softmax over the scaled cosines between an embedding and every centre, with
an angular margin added to the angle to its own person's centre.

Label convention: the loss takes a batch of embeddings ``(N, d)``, one integer
class per embedding ``(N,)`` (``0 .. K-1``, the training people numbered
contiguously) and the centres ``(K, d)``.

==============  ===============================================================
logit, own      ``scale * cos(theta + margin)``, ``theta`` the angle between the
person          embedding and its class centre (past ``pi - margin``, where
                ``cos(theta + m)`` would rise again: ``cos(theta) - m sin(m)``)
logit, others   ``scale * cos(theta_j)``
loss            softmax cross-entropy of those logits, mean over the batch
==============  ===============================================================

Embeddings and centres are L2-normalised inside. The margin is in radians
(0.5, the paper's), the scale 30. Works on NumPy arrays and tensors of any
Keras 3 backend (``keras.ops`` only).
"""

from __future__ import annotations

import math

__all__ = ["arcface_loss", "ARCFACE_MARGIN", "ARCFACE_SCALE"]

ARCFACE_MARGIN = 0.5
ARCFACE_SCALE = 30.0
EPSILON = 1e-12


def _unit(x):
    from keras import ops

    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), EPSILON))


def arcface_loss(embeddings, classes, centres, margin: float = ARCFACE_MARGIN, scale: float = ARCFACE_SCALE):
    """Mean ArcFace loss of ``(N, d)`` embeddings with ``(N,)`` classes against ``(K, d)`` centres."""
    from keras import ops

    x = _unit(ops.convert_to_tensor(embeddings, dtype="float32"))
    w = _unit(ops.convert_to_tensor(centres, dtype="float32"))
    classes = ops.reshape(ops.cast(ops.convert_to_tensor(classes), "int32"), (-1,))
    cos = ops.clip(ops.matmul(x, ops.transpose(w)), -1.0, 1.0)
    sin = ops.sqrt(ops.maximum(1.0 - ops.square(cos), 0.0))
    shifted = cos * math.cos(margin) - sin * math.sin(margin)  # cos(theta + margin)
    shifted = ops.where(cos > math.cos(math.pi - margin), shifted, cos - margin * math.sin(margin))
    own = ops.one_hot(classes, ops.shape(w)[0])
    logits = scale * ops.where(own > 0, shifted, cos)
    return -ops.mean(ops.sum(own * ops.log_softmax(logits, axis=-1), axis=-1))
