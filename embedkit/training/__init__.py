"""Fine-tuning Siamese encoders: the options dataclass, feature caching, the fit loop."""

from embedkit.training.config import FinetuneConfig

__all__ = ["FinetuneConfig", "finetune"]


def __getattr__(name):
    # Lazy: importing the config must not import TensorFlow.
    if name == "finetune":
        from embedkit.training.trainer import finetune

        return finetune
    raise AttributeError(f"module 'embedkit.training' has no attribute {name!r}")
