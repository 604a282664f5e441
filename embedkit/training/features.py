"""Split a backbone where the frozen layers end, and cache what the frozen part computes.

While the lower layers are frozen their outputs never change, so they are
computed once per image and an epoch only runs the trainable top. The split
point is the first layer of one of the backbone's blocks (``BackboneSpec.blocks``,
bottom to top); the tensor flowing into it must be the only one crossing the
boundary, which holds at block starts of the registered backbones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

__all__ = ["BackboneSplit", "block_start", "split_backbone", "feature_bridge", "cache_features", "map_features",
           "FeatureSource"]


def block_start(model, prefix: str) -> int:
    """Index in ``model.layers`` of the first layer of the block named ``prefix``.

    A layer belongs to the block when its name is ``prefix`` or starts with
    ``prefix + "_"`` (so ``Block17_1`` does not match ``Block17_10``).
    """
    for i, layer in enumerate(model.layers):
        if layer.name == prefix or layer.name.startswith(prefix + "_"):
            return i
    raise EmbedkitError(f"backbone {model.name!r} has no layer of block {prefix!r}")


@dataclass
class BackboneSplit:
    """A backbone cut in two.

    Attributes:
        frozen: maps images to the boundary features (None: the boundary is
            the image itself, everything trains).
        tail: maps boundary features to the backbone's output (None: nothing
            of the backbone trains).
        boundary: name of the first trainable block, ``"input"`` or ``"output"``.
        feature_shape: shape of one cached feature.
    """

    frozen: object
    tail: object
    boundary: str
    feature_shape: tuple[int, ...]


def split_backbone(backbone_model, blocks: tuple[str, ...], n_trainable: int) -> BackboneSplit:
    """Freeze all but the top ``n_trainable`` blocks (``-1`` or ``>= len(blocks)``: train all).

    Sets ``trainable`` on the backbone's layers accordingly.
    """
    import keras

    n_blocks = len(blocks)
    if n_trainable == 0:
        backbone_model.trainable = False
        return BackboneSplit(backbone_model, None, "output", tuple(backbone_model.output.shape[1:]))
    if n_trainable < 0 or n_trainable >= n_blocks:
        backbone_model.trainable = True
        return BackboneSplit(None, backbone_model, "input", tuple(backbone_model.input.shape[1:]))
    name = blocks[n_blocks - n_trainable]
    start = block_start(backbone_model, name)
    boundary = backbone_model.layers[start].input
    if isinstance(boundary, (list, tuple)):
        raise EmbedkitError(f"block {name!r} of {backbone_model.name!r} starts with several inputs; cannot split there")
    try:
        tail = keras.Model(boundary, backbone_model.output, name=f"{backbone_model.name}_from_{name}")
    except Exception as exc:
        raise EmbedkitError(f"cannot split {backbone_model.name!r} at block {name!r}: {exc}") from None
    frozen = keras.Model(backbone_model.input, boundary, name=f"{backbone_model.name}_to_{name}")
    backbone_model.trainable = True
    for layer in frozen.layers:
        layer.trainable = False
    for layer in tail.layers:
        layer.trainable = True
    logger.info("training %s from block %s (%d of %d blocks); frozen features %s", backbone_model.name, name,
                n_trainable, n_blocks, tuple(boundary.shape[1:]))
    return BackboneSplit(frozen, tail, name, tuple(boundary.shape[1:]))


def _boundary(backbone_model, blocks: tuple[str, ...], n_trainable: int):
    if n_trainable == 0:
        return backbone_model.output
    return backbone_model.layers[block_start(backbone_model, blocks[len(blocks) - n_trainable])].input


def feature_bridge(backbone_model, blocks: tuple[str, ...], from_trainable: int, to_trainable: int):
    """The layers between two boundaries: maps the features cached for
    ``from_trainable`` trainable blocks to those for ``to_trainable`` (fewer) blocks,
    so one pass over the images serves every phase."""
    import keras

    if not 0 <= to_trainable < from_trainable < len(blocks):
        raise ValueError(f"cannot bridge from {from_trainable} to {to_trainable} trainable blocks")
    return keras.Model(_boundary(backbone_model, blocks, from_trainable), _boundary(backbone_model, blocks, to_trainable),
                       name=f"{backbone_model.name}_bridge_{from_trainable}_{to_trainable}")


def map_features(model, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``model`` (in inference mode) over cached features, batch by batch."""
    import tensorflow as tf

    run = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    parts = [run(features[s:s + batch_size]).numpy() for s in range(0, len(features), batch_size)]
    return np.concatenate(parts).astype(np.float32, copy=False)


def cache_features(frozen, preprocessing, crops: np.ndarray, batch_size: int = 64,
                   progress: bool = False, desc: str = "caching features") -> np.ndarray:
    """Frozen-part outputs ``(N, *feature_shape)`` float32 for uint8 crops, computed once."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    size = preprocessing.size

    @tf.function(input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)], reduce_retracing=True)
    def run(batch):
        return frozen(batch, training=False)

    shape = tuple(int(d) for d in frozen.output.shape[1:])
    out = np.empty((len(crops),) + shape, dtype=np.float32)
    logger.info("caching %d x %s features (%.0f MB)", len(crops), shape, out.nbytes / 2**20)
    with tqdm(total=len(crops), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, len(crops), batch_size):
            batch = preprocessing(crops[start:start + batch_size])
            out[start:start + len(batch)] = run(batch).numpy()
            bar.update(len(batch))
    return out


class FeatureSource:
    """Inputs of the trainable part for any items: cached features, or crops
    preprocessed on the fly when the whole network trains."""

    def __init__(self, features: np.ndarray | None = None, crops: np.ndarray | None = None, preprocessing=None):
        if (features is None) == (crops is None):
            raise ValueError("give either cached features or crops with their preprocessing")
        self.features = features
        self.crops = crops
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.features if self.features is not None else self.crops)

    def take(self, indices) -> np.ndarray:
        if self.features is not None:
            return self.features[indices]
        return self.preprocessing(self.crops[indices])
