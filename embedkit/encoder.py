"""The encoder every command shares: backbone -> projection head -> L2 norm.

``Encoder.encode(faces)`` turns aligned uint8 face crops into unit-length
float32 embeddings; two faces' similarity is the dot product of theirs
(cosine similarity, higher = more alike). An encoder saves to and loads from
a model folder holding its config (JSON) and weights (``.weights.h5``), never
pickled code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from embedkit.backbones import PRETRAINED, RANDOM, Preprocessing, get_backbone
from embedkit.errors import ModelError, UnknownNameError

logger = logging.getLogger(__name__)

MODEL_FORMAT = "embedkit-model/1"
CONFIG_FILE = "embedkit_model.json"
WEIGHTS_FILE = "model.weights.h5"
# Used for same/different when a model has no calibrated threshold.
UNCALIBRATED_THRESHOLD = 0.5
# Batches up to this size run eagerly until a compiled graph exists.
EAGER_MAX_FACES = 4
# Bounds on what a model folder's config may ask to build, checked before
# anything is allocated (a damaged or hostile config must not exhaust memory).
MAX_CONFIG_BYTES = 64 << 20
MAX_INPUT_SIZE = 1024
MAX_HEAD_LAYERS = 8
MAX_HEAD_UNITS = 8192
CONFIG_KEYS = {"format", "backbone", "preprocessing", "head_units", "embedding_dim", "threshold", "weights_source",
               "metadata", "model_id"}
REQUIRED_KEYS = ("format", "backbone", "preprocessing", "head_units", "model_id")


def build_network(backbone_model, input_size: int, head_units: tuple[int, ...] = ()):
    """The Keras network: backbone, optional dense projection head, L2 normalisation."""
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), name="faces")
    x = backbone_model(inputs)
    for i, units in enumerate(head_units):
        last = i == len(head_units) - 1
        x = layers.Dense(units, activation=None if last else "relu", name=f"head_dense_{i}")(x)
    outputs = layers.UnitNormalization(name="l2_normalize")(x)
    return keras.Model(inputs, outputs, name="encoder")


class Encoder:
    """Backbone + head + L2 norm, with its preprocessing and metadata.

    Args:
        backbone: registry name of the backbone.
        network: the Keras network from :func:`build_network`.
        preprocessing: the backbone's pixel preparation.
        head_units: sizes of the projection head's dense layers (empty: none).
        threshold: cosine-similarity threshold for "same person", or None.
        weights_source: ``pretrained``, ``random``, a weights path, or
            ``finetuned`` for a trained model folder.
        metadata: anything else saved with the model (split, metrics, ...).
    """

    def __init__(self, backbone: str, network, preprocessing: Preprocessing, head_units=(),
                 threshold: float | None = None, weights_source: str = PRETRAINED, metadata: dict | None = None):
        self.backbone = backbone
        self.network = network
        self.preprocessing = preprocessing
        self.head_units = tuple(int(u) for u in head_units)
        self.threshold = threshold
        self.weights_source = weights_source
        self.metadata = dict(metadata or {})
        self._model_id = None
        self._predict = None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_backbone(cls, name: str = "facenet", weights: str = PRETRAINED, input_size: int | None = None,
                      head_units=()) -> "Encoder":
        """An encoder over a registered backbone (pretrained, random or local weights)."""
        spec = get_backbone(name)
        preprocessing = spec.preprocessing_for(input_size)
        backbone_model = spec.build(weights=weights, input_size=preprocessing.size)
        network = build_network(backbone_model, preprocessing.size, tuple(head_units))
        threshold = spec.threshold if (weights == PRETRAINED and not head_units
                                       and preprocessing == spec.preprocessing) else None
        source = weights if weights in (PRETRAINED, RANDOM) else str(weights)
        return cls(name, network, preprocessing, head_units, threshold, source)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Encoder":
        """Rebuild an encoder saved with :meth:`save`.

        The config is checked (keys, types, sizes) before anything is built,
        and the model id is computed from the weights actually loaded: a
        folder whose weights are not the ones its config was saved with is
        refused, so an index can never be searched with another model.
        """
        folder = Path(folder)
        config = read_model_config(folder)
        weights_path = folder / WEIGHTS_FILE
        if not weights_path.is_file():
            raise ModelError(f"{folder}: weights file {WEIGHTS_FILE} is missing")
        try:
            spec = get_backbone(config["backbone"])
        except UnknownNameError as exc:
            raise ModelError(f"{folder}: {exc}") from None
        preprocessing = Preprocessing.from_config(config["preprocessing"])
        network = build_network(spec.build(weights=RANDOM, input_size=preprocessing.size), preprocessing.size,
                                tuple(config["head_units"]))
        try:
            network.load_weights(str(weights_path))
        except Exception as exc:
            raise ModelError(f"{weights_path}: weights do not fit the saved config ({exc})") from None
        encoder = cls(config["backbone"], network, preprocessing, config["head_units"],
                      config.get("threshold"), "finetuned", config.get("metadata", {}))
        encoder._check_loaded(folder, config)
        return encoder

    def _check_loaded(self, folder: Path, config: dict) -> None:
        """The loaded network must be the one the config describes (its size and its model id)."""
        if "embedding_dim" in config and config["embedding_dim"] != self.embedding_dim:
            raise ModelError(f"{folder}: config says {config['embedding_dim']}-d embeddings, the network "
                             f"makes {self.embedding_dim}-d")
        if self.model_id != config["model_id"]:
            raise ModelError(
                f"{folder}: the weights are not the ones this model was saved with (config model id "
                f"{config['model_id']}, weights give {self.model_id}); the folder was changed after saving"
            )

    def save(self, folder: str | os.PathLike) -> Path:
        """Write config and weights to ``folder`` (each file replaced atomically)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        remove_save_leftovers(folder)
        with tempfile.TemporaryDirectory(dir=folder, prefix=SAVE_PREFIX) as tmp:
            tmp_weights = Path(tmp) / WEIGHTS_FILE
            self.network.save_weights(str(tmp_weights))
            self._model_id = None
            config = self.get_config()
            config["model_id"] = self.model_id
            os.replace(tmp_weights, folder / WEIGHTS_FILE)
            tmp_config = Path(tmp) / CONFIG_FILE
            tmp_config.write_text(json.dumps(config, indent=2))
            os.replace(tmp_config, folder / CONFIG_FILE)
        return folder

    def get_config(self) -> dict:
        return {
            "format": MODEL_FORMAT,
            "backbone": self.backbone,
            "preprocessing": self.preprocessing.get_config(),
            "head_units": list(self.head_units),
            "embedding_dim": self.embedding_dim,
            "threshold": self.threshold,
            "weights_source": self.weights_source,
            "metadata": self.metadata,
        }

    # -- properties ---------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self.preprocessing.size

    @property
    def embedding_dim(self) -> int:
        return int(self.network.output_shape[-1])

    @property
    def same_threshold(self) -> float:
        """The threshold used for same/different verdicts."""
        return self.threshold if self.threshold is not None else UNCALIBRATED_THRESHOLD

    @property
    def model_id(self) -> str:
        """``backbone-<hash of all weights>``: equal ids mean equal embeddings."""
        if self._model_id is None:
            digest = hashlib.sha256()
            digest.update(json.dumps(self.preprocessing.get_config(), sort_keys=True).encode())
            for weight in self.network.weights:
                digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
            self._model_id = f"{self.backbone}-{digest.hexdigest()[:16]}"
        return self._model_id

    # -- encoding -----------------------------------------------------------------------------
    def _predict_fn(self):
        if self._predict is None:
            import tensorflow as tf

            network = self.network
            size = self.input_size

            @tf.function(input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)], reduce_retracing=True)
            def predict(batch):
                return network(batch, training=False)

            self._predict = _frozen(predict)
        return self._predict

    def refresh(self) -> None:
        """Forget the compiled graph and model id after changing ``network``'s weights in place."""
        self._predict = None
        self._model_id = None

    def encode(self, faces, batch_size: int = 64, flip: bool = False) -> np.ndarray:
        """Unit-length embeddings ``(N, d)`` of aligned uint8 crops ``(N, size, size, 3)``.

        With ``flip=True`` each face's embedding is the normalised sum of the
        face's and its mirror image's (slower by half, slightly more accurate).
        """
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[None]
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        # Tracing the graph costs seconds: a handful of faces runs eagerly instead.
        if self._predict is None and len(faces) <= EAGER_MAX_FACES:
            network = self.network
            predict = lambda batch: network(batch, training=False)  # noqa: E731
        else:
            predict = self._predict_fn()
        return embed_batches(predict, self.preprocessing, faces, batch_size, flip)


def embed_batches(predict, preprocessing: Preprocessing, faces: np.ndarray, batch_size: int, flip: bool) -> np.ndarray:
    """Run ``predict`` (float batch -> embeddings) over uint8 ``faces`` in batches, with optional flip.

    Shared by every back-end, so they all embed exactly the same way.
    """
    out = None
    for start in range(0, len(faces), batch_size):
        batch = preprocessing(faces[start:start + batch_size])
        emb = np.asarray(predict(batch), dtype=np.float32)
        if flip:
            emb = emb + np.asarray(predict(np.ascontiguousarray(batch[:, :, ::-1])), dtype=np.float32)
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        if out is None:
            out = np.empty((len(faces), emb.shape[1]), dtype=np.float32)
        out[start:start + len(emb)] = emb
    return out


SAVE_PREFIX = ".save-"


def remove_save_leftovers(folder: Path) -> None:
    """Delete the temporary folders of saves that were killed part-way."""
    import shutil

    for leftover in folder.glob(SAVE_PREFIX + "*"):
        if leftover.is_dir() and not leftover.is_symlink():
            logger.info("removing %s, left by an interrupted save", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


def read_model_config(folder: Path) -> dict:
    """A model folder's config, checked: known keys of the right types, sizes within bounds."""
    config_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise ModelError(f"{folder}: model folder not found")
    if not config_path.is_file():
        raise ModelError(f"{folder}: not an embedkit model folder (no {CONFIG_FILE})")
    try:
        if config_path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError(f"{config_path}: model config is larger than {MAX_CONFIG_BYTES >> 20} MB; not read")
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_path}: unreadable model config ({exc})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{config_path}: model config is not a JSON object")
    if config.get("format") != MODEL_FORMAT:
        raise ModelError(
            f"{folder}: model format {config.get('format')!r} is not supported by this embedkit "
            f"(expects {MODEL_FORMAT!r})"
        )
    problem = _config_problem(config)
    if problem:
        raise ModelError(f"{config_path}: damaged model config: {problem}")
    return config


def _config_problem(config: dict) -> str | None:
    """What is wrong with a model config's keys, types and sizes (None if nothing)."""
    from embedkit.backbones.preprocessing import SCALINGS

    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        return f"unknown keys {', '.join(map(repr, unknown))}"
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        return f"missing keys {', '.join(map(repr, missing))}"
    if not isinstance(config["backbone"], str) or not isinstance(config["model_id"], str):
        return "backbone and model_id must be strings"
    pre = config["preprocessing"]
    if not isinstance(pre, dict) or set(pre) - {"size", "scaling", "grayscale"} or "size" not in pre:
        return "preprocessing must hold size, scaling and grayscale"
    if not _is_int(pre["size"]) or not 8 <= pre["size"] <= MAX_INPUT_SIZE:
        return f"input size {pre['size']!r} is not a whole number from 8 to {MAX_INPUT_SIZE}"
    if pre.get("scaling") not in SCALINGS or not isinstance(pre.get("grayscale", False), bool):
        return f"unknown scaling {pre.get('scaling')!r} or non-boolean grayscale"
    head = config["head_units"]
    if not isinstance(head, list) or len(head) > MAX_HEAD_LAYERS:
        return f"head_units must be a list of at most {MAX_HEAD_LAYERS} layer sizes"
    if not all(_is_int(u) and 1 <= u <= MAX_HEAD_UNITS for u in head):
        return f"head layer sizes {head!r} must be whole numbers from 1 to {MAX_HEAD_UNITS}"
    dim = config.get("embedding_dim")
    if dim is not None and not _is_int(dim):
        return f"embedding_dim {dim!r} is not a whole number"
    threshold = config.get("threshold")
    if threshold is not None and (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)
                                  or not -1.0 <= threshold <= 1.0):
        return f"threshold {threshold!r} is not a number from -1 to 1"
    if not isinstance(config.get("metadata", {}), dict) or not isinstance(config.get("weights_source", ""), str):
        return "metadata must be an object and weights_source a string"
    return None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _frozen(function):
    """``function``'s graph with the weights folded in as constants.

    TensorFlow's graph optimiser can then fold each batch normalisation into
    its convolution, which makes facenet about an eighth faster on a CPU; the
    outputs agree to 1e-6. Falls back to ``function`` if freezing fails. The
    weights are copied: after changing them, call :meth:`Encoder.refresh`.
    """
    import tensorflow as tf

    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    except Exception as exc:  # an internal API: keep working without it
        logger.debug("could not freeze the encoder graph (%s); using variables", exc)
        return function

    def predict(batch):
        out = frozen(tf.constant(batch, dtype=tf.float32))
        return out[0] if isinstance(out, (list, tuple)) else out

    return predict


def load_encoder(model: str | os.PathLike | None = None, backbone: str | None = None,
                 weights: str = PRETRAINED) -> Encoder:
    """A saved model folder if ``model`` is given, else a pretrained backbone (default facenet)."""
    if model is not None:
        if backbone is not None:
            logger.info("--model given; ignoring backbone %s", backbone)
        return Encoder.load(model)
    return Encoder.from_backbone(backbone or "facenet", weights=weights)
