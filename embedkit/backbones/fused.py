"""``facenet+sface``: FaceNet and SFace together, each on its own framing of the face.

Score fusion measured on LFW (``python benchmarks/bench_fusion.py``, all
6,000 pairs, 10-fold): the mean of the two cosines separates people better
than either network alone. As an embedding it is the two unit vectors joined
and divided by sqrt(2) (256-d, unit length), so an index holds it like any
other. Each face is cropped twice: FaceNet's 160 px stretched framing and
SFace's 112 px ArcFace template. Inference only.
"""

from __future__ import annotations

from embedkit.backbones.facenet import FACENET_PREPROCESSING
from embedkit.backbones.registry import BackboneSpec, inference_only, register_backbone

NAME = "facenet+sface"
PARTS = ("facenet", "sface")
# Cosine-similarity threshold with YuNet detection: the best single threshold
# over all 6,000 LFW pairs, measured by
# `python benchmarks/bench_lfw.py --backbone facenet+sface --runtime auto --configs yunet`.
FUSED_THRESHOLD = 0.343


def load_fused(job: str = "single", backend: str = "auto"):
    """The fused encoder; the FaceNet part runs on the back-end that suits ``job`` (see :mod:`embedkit.runtime`)."""
    from embedkit.runtime.fused import FusedEncoder
    from embedkit.runtime.select import load_encoder

    parts = [load_encoder(backbone=name, job=job, backend=backend) for name in PARTS]
    return FusedEncoder(NAME, parts, FUSED_THRESHOLD)


register_backbone(
    BackboneSpec(
        name=NAME,
        description="FaceNet + SFace score fusion (both embeddings joined, 256-d); inference only",
        preprocessing=FACENET_PREPROCESSING,
        output_dim=256,
        builder=inference_only(f"{NAME} is inference-only (it joins two networks' embeddings): nothing to build "
                               "or fine-tune"),
        threshold=FUSED_THRESHOLD,
        thresholds={"yunet": FUSED_THRESHOLD},
        runtime_loader=load_fused,
    )
)
