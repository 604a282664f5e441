"""Losses for metric learning: pure functions of embeddings and labels."""

from embedkit.losses.contrastive import contrastive_loss, contrastive_loss_from_distance

LOSSES = {"contrastive": contrastive_loss}

__all__ = ["LOSSES", "contrastive_loss", "contrastive_loss_from_distance"]
