"""Splitting a backbone at a block boundary (embedkit.training.features)."""

import numpy as np
import pytest

from embedkit.backbones import get_backbone
from embedkit.errors import EmbedkitError
from embedkit.training.features import FeatureSource, block_start, cache_features, split_backbone


@pytest.fixture(scope="module")
def vgg():
    return get_backbone("vgg16").build("random", 32)


def test_registered_blocks_name_real_layers():
    for name in ("simple", "vgg16"):
        spec = get_backbone(name)
        model = spec.build("random", 32)
        starts = [block_start(model, block) for block in spec.blocks]
        assert starts == sorted(starts) and len(set(starts)) == len(starts)


def test_block_prefix_needs_an_underscore_boundary():
    class Layer:
        def __init__(self, name):
            self.name = name

    class Model:
        name = "m"
        layers = [Layer("Block17_10_conv"), Layer("Block17_1_conv"), Layer("Block17_1")]

    assert block_start(Model, "Block17_1") == 1
    with pytest.raises(EmbedkitError, match="Block9"):
        block_start(Model, "Block9")


def test_frozen_then_tail_equals_the_whole_backbone(vgg):
    x = np.random.default_rng(0).random((3, 32, 32, 3)).astype(np.float32)
    cut = split_backbone(vgg, get_backbone("vgg16").blocks, 2)
    assert cut.boundary == "block4_conv1" and cut.feature_shape == (4, 4, 256)
    np.testing.assert_allclose(cut.tail(cut.frozen(x)).numpy(), vgg(x).numpy(), rtol=1e-5, atol=1e-5)
    assert cut.tail.trainable_weights and not cut.frozen.trainable_weights
    trainable = {w.path for w in vgg.trainable_weights}
    assert any("block5_conv1" in p for p in trainable) and not any("block3_conv1" in p for p in trainable)


def test_none_and_all(vgg):
    blocks = get_backbone("vgg16").blocks
    frozen = split_backbone(vgg, blocks, 0)
    assert frozen.tail is None and frozen.frozen is vgg and not vgg.trainable_weights
    everything = split_backbone(vgg, blocks, -1)
    assert everything.frozen is None and everything.boundary == "input" and vgg.trainable_weights


def test_cache_features_and_source(vgg):
    spec = get_backbone("vgg16")
    prep = spec.preprocessing_for(32)
    crops = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    cut = split_backbone(vgg, spec.blocks, 1)
    feats = cache_features(cut.frozen, prep, crops, batch_size=2)
    assert feats.shape == (5, 2, 2, 512) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[:2], cut.frozen(prep(crops[:2])).numpy(), rtol=1e-5, atol=1e-4)
    assert FeatureSource(features=feats).take([4, 0]).shape == (2, 2, 2, 512)
    assert FeatureSource(crops=crops, preprocessing=prep).take([1]).shape == (1, 32, 32, 3)


def test_bridge_maps_deep_features_to_higher_boundaries(vgg):
    from embedkit.training.features import feature_bridge, map_features

    blocks = get_backbone("vgg16").blocks
    x = np.random.default_rng(2).random((3, 32, 32, 3)).astype(np.float32)
    deep = split_backbone(vgg, blocks, 2).frozen(x).numpy()
    to_one = map_features(feature_bridge(vgg, blocks, 2, 1), deep)
    np.testing.assert_allclose(to_one, split_backbone(vgg, blocks, 1).frozen(x).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(map_features(feature_bridge(vgg, blocks, 2, 0), deep), vgg(x).numpy(),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="bridge"):
        feature_bridge(vgg, blocks, 1, 2)
