"""VGG16 (ImageNet) without its classifier, global-average pooled to 512-d.

Pretrained weights come through Keras' own download (cached in
``~/.keras/models``); offline, pass a local ``*_notop.h5`` weights file.
"""

from __future__ import annotations

from embedkit.backbones.preprocessing import Preprocessing
from embedkit.backbones.registry import PRETRAINED, RANDOM, BackboneSpec, register_backbone
from embedkit.backbones.weights import local_weights_file
from embedkit.errors import WeightsError

VGG16_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG16_BLOCKS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def _build_vgg16(weights: str, input_size: int):
    import keras

    def build(source):
        return keras.applications.VGG16(
            include_top=False, weights=source, input_shape=(input_size, input_size, 3), pooling="avg"
        )

    if weights == RANDOM:
        return build(None)
    if weights == PRETRAINED:
        try:
            return build("imagenet")
        except Exception as exc:
            raise WeightsError(
                f"ImageNet VGG16 weights could not be fetched by Keras ({exc.__class__.__name__}: {exc}). "
                f"Put {VGG16_NOTOP_FILE} in ~/.keras/models/ or pass it with --weights PATH"
            ) from None
    model = build(None)
    model.load_weights(str(local_weights_file(weights)))
    return model


register_backbone(
    BackboneSpec(
        name="vgg16",
        description="VGG16 convolutional blocks, ImageNet weights (Keras download), 512-d average-pooled",
        preprocessing=Preprocessing(size=224, scaling="caffe"),
        output_dim=512,
        builder=_build_vgg16,
        threshold=None,
        blocks=VGG16_BLOCKS,
    )
)
