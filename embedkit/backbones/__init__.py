"""Backbones chosen by name: ``get_backbone("facenet")``."""

from embedkit.backbones.preprocessing import Preprocessing
from embedkit.backbones.registry import (
    PRETRAINED,
    RANDOM,
    BackboneSpec,
    available_backbones,
    get_backbone,
    register_backbone,
)

__all__ = [
    "PRETRAINED",
    "RANDOM",
    "BackboneSpec",
    "Preprocessing",
    "available_backbones",
    "get_backbone",
    "register_backbone",
]
