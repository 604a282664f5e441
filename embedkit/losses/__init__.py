"""Losses for metric learning: pure functions of embeddings and labels, one per file.

``LOSSES`` maps a name (``FinetuneConfig.loss``, ``embedkit finetune --loss``)
to a :class:`Loss`: the function, what it takes (``pairs``: two embedding
batches and a same/different label per pair; ``labels``: one embedding batch
and a person label per embedding; ``targets``: one embedding batch and a
teacher's embedding of each same face; ``labels+targets``: both; ``classes``: one embedding batch, a
class (training person, numbered from 0) per embedding and the class centres
the trainer learns with the encoder) and its default margin.
"""

from dataclasses import dataclass
from typing import Callable

from embedkit.losses.arcface import ARCFACE_MARGIN, arcface_loss
from embedkit.losses.contrastive import contrastive_loss, contrastive_loss_from_distance
from embedkit.losses.distillation import DISTILLATION_MARGIN, distillation_loss
from embedkit.losses.triplet import TRIPLET_MARGIN, triplet_semihard_loss
from embedkit.losses.triplet_distill import triplet_distillation_loss

# Contrastive margin in Euclidean distance of unit vectors: different people pushed to about orthogonal.
CONTRASTIVE_MARGIN = 1.4


@dataclass(frozen=True)
class Loss:
    """A registered loss: ``function``, its ``inputs`` (``pairs``, ``labels``, ``targets``,
    ``labels+targets`` or ``classes``), its default ``margin``."""

    name: str
    function: Callable
    inputs: str
    margin: float


LOSSES = {
    "contrastive": Loss("contrastive", contrastive_loss, "pairs", CONTRASTIVE_MARGIN),
    "triplet": Loss("triplet", triplet_semihard_loss, "labels", TRIPLET_MARGIN),
    "distill": Loss("distill", distillation_loss, "targets", DISTILLATION_MARGIN),
    "triplet+distill": Loss("triplet+distill", triplet_distillation_loss, "labels+targets", TRIPLET_MARGIN),
    "arcface": Loss("arcface", arcface_loss, "classes", ARCFACE_MARGIN),
}

__all__ = ["CONTRASTIVE_MARGIN", "LOSSES", "Loss", "arcface_loss", "contrastive_loss", "contrastive_loss_from_distance",
           "distillation_loss", "triplet_distillation_loss", "triplet_semihard_loss"]
