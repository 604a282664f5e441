"""A small CNN trained from scratch, like embedkit's original Siamese network."""

from __future__ import annotations

from embedkit.backbones.preprocessing import Preprocessing
from embedkit.backbones.registry import PRETRAINED, RANDOM, BackboneSpec, register_backbone
from embedkit.backbones.weights import local_weights_file
from embedkit.errors import WeightsError

SIMPLE_FILTERS = (32, 64, 128, 256)


def _build_simple(weights: str, input_size: int):
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3))
    x = inputs
    for i, filters in enumerate(SIMPLE_FILTERS, start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.Activation("relu", name=f"block{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(128, name="features")(x)
    model = keras.Model(inputs, outputs, name="simple_cnn")
    if weights == PRETRAINED:
        raise WeightsError("the simple backbone has no pretrained weights; train it with `embedkit finetune --backbone simple`")
    if weights != RANDOM:
        model.load_weights(str(local_weights_file(weights)))
    return model


register_backbone(
    BackboneSpec(
        name="simple",
        description="small 4-block CNN trained from scratch (the original project's model), 128-d",
        preprocessing=Preprocessing(size=64, scaling="unit"),
        output_dim=128,
        builder=_build_simple,
        threshold=None,
        blocks=tuple(f"block{i}_conv" for i in range(1, len(SIMPLE_FILTERS) + 1)),
    )
)
