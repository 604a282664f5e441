"""Semi-hard triplet loss plus embedding distillation, summed: identities kept apart while each
shifted face is pulled onto the teacher's embedding of it clean.

Label convention: a batch of embeddings ``(N, d)``, one integer person label
per embedding ``(N,)`` (equal labels = same person, as in
:mod:`embedkit.losses.triplet`) and the teacher's embedding of each same face
``(N, d)`` (row ``i`` belongs to face ``i``, as in
:mod:`embedkit.losses.distillation`).

=====================  ======================================================
term                   meaning
=====================  ======================================================
triplet (``margin``)   semi-hard triplets mined in the batch, squared distances
distillation           mean ``1 - cos(embedding_i, target_i)``, no margin
loss                   their sum (both about 0.1 to 0.3 over pretrained facenet)
=====================  ======================================================
"""

from __future__ import annotations

from embedkit.losses.distillation import distillation_loss
from embedkit.losses.triplet import TRIPLET_MARGIN, triplet_semihard_loss

__all__ = ["triplet_distillation_loss"]


def triplet_distillation_loss(embeddings, labels, targets, margin: float = TRIPLET_MARGIN):
    """``triplet_semihard_loss(embeddings, labels, margin) + distillation_loss(embeddings, targets)``."""
    return triplet_semihard_loss(embeddings, labels, margin) + distillation_loss(embeddings, targets)
