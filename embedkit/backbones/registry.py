"""The backbone registry: every backbone is chosen by name.

A :class:`BackboneSpec` says what a backbone is (input, output size, its
preprocessing, a calibrated threshold for its pretrained weights) and how to
build its Keras network. ``get_backbone("vgg16")`` is the one lookup; an
unknown name fails listing the names that exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from embedkit.backbones.preprocessing import Preprocessing
from embedkit.errors import ModelError, UnknownNameError

# Weights sources a builder accepts besides a path to a local weights file.
PRETRAINED = "pretrained"
RANDOM = "random"


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone.

    Attributes:
        name: registry name (``facenet``, ``vgg16``, ...).
        description: one line for ``embedkit backbones``.
        preprocessing: what the network expects (size, colour, scaling).
        output_dim: size of the feature vector the network returns.
        builder: ``builder(weights, input_size) -> keras.Model``; ``weights`` is
            ``"pretrained"``, ``"random"`` or a path to a local weights file.
        threshold: cosine-similarity threshold for same/different with the
            pretrained weights, calibrated on LFW, or None if not calibrated.
        thresholds: the pretrained weights' thresholds per face setting
            (:func:`embedkit.calibration.face_setting` names: ``yunet``,
            ``mtcnn``, ``cc0.7``...); a setting not listed is uncalibrated.
        blocks: names of the layers that start each block, bottom to top, so
            fine-tuning can unfreeze "the top N blocks".
        pinned_weights: the pretrained weights file as a
            :class:`~embedkit.backbones.weights.PinnedWeights` (its hash keys
            the cached fast-runtime conversion), or None.
        litert_quantization: the quantisation of its pretrained weights' LiteRT
            conversion (``fp16``), given only where LFW accuracy was
            measured to stay within 0.1 pp (``benchmarks/bench_quant.py``);
            None: float32, the same embeddings as TensorFlow's.
        runtime_loader: for backbones with no Keras network of their own (ONNX
            models, combinations): ``runtime_loader(job, backend) -> encoder``
            (see :func:`embedkit.runtime.load_encoder`), and ``builder`` is not used.
    """

    name: str
    description: str
    preprocessing: Preprocessing
    output_dim: int
    builder: Callable
    threshold: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    blocks: tuple[str, ...] = field(default_factory=tuple)
    pinned_weights: object | None = None
    litert_quantization: str | None = None
    runtime_loader: Callable | None = None

    def build(self, weights: str = PRETRAINED, input_size: int | None = None):
        """Build the Keras network with the given weights."""
        return self.builder(weights=weights, input_size=input_size or self.preprocessing.size)

    def preprocessing_for(self, input_size: int | None) -> Preprocessing:
        if not input_size or input_size == self.preprocessing.size:
            return self.preprocessing
        return Preprocessing(input_size, self.preprocessing.scaling, self.preprocessing.grayscale)


def inference_only(why: str) -> Callable:
    """The ``builder`` of a backbone with no Keras network of its own: building it is a ModelError saying ``why``."""

    def build(weights: str, input_size: int):
        raise ModelError(why)

    return build


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone; a name registered twice is an error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def available_backbones() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_backbone(name: str) -> BackboneSpec:
    """The backbone registered as ``name``."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown backbone {name!r}; valid backbones: {', '.join(sorted(_REGISTRY))}"
        ) from None


def _load_builtin() -> None:
    # Importing the modules registers them; their TensorFlow imports stay lazy.
    from embedkit.backbones import facenet, fused, sface, simple, vgg16  # noqa: F401
