"""embedkit: face embeddings from pretrained backbones.

Compare faces, fine-tune Siamese encoders with a contrastive loss, and search
a photo library with FAISS. The main entry points:

>>> from embedkit import Encoder, FaceExtractor, FacePipeline, compare_files
>>> pipeline = FacePipeline(Encoder.from_backbone("facenet"))
>>> compare_files(pipeline, "a.jpg", "b.jpg").score
"""

__version__ = "0.1.0"

_EXPORTS = {
    "Encoder": "embedkit.encoder",
    "load_encoder": "embedkit.encoder",
    "FaceExtractor": "embedkit.faces",
    "read_image": "embedkit.faces",
    "FacePipeline": "embedkit.pipeline",
    "compare_files": "embedkit.compare",
    "FaceIndex": "embedkit.index",
    "get_backbone": "embedkit.backbones",
    "available_backbones": "embedkit.backbones",
}


def __getattr__(name):
    # Lazy, so `import embedkit` stays cheap (no TensorFlow until needed).
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'embedkit' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
