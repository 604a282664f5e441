"""Which back-end runs an encoder: chosen per job, the conversion made once and cached."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from embedkit.backbones import PRETRAINED, RANDOM, Preprocessing, get_backbone
from embedkit.errors import ModelError
from embedkit.runtime import cache, litert

logger = logging.getLogger(__name__)

JOBS = ("single", "bulk")
BACKENDS = ("auto", "tensorflow", "litert")
# A bulk job expected to embed at least this many faces runs on TensorFlow's
# frozen graph. Measured on a quiet 2-core machine (`python benchmarks/bench_cold.py
# --backends`, benchmarks/results/cold_backends.json): facenet embeds 66 faces/s
# on TensorFlow and 65 on LiteRT in batches of 64, but TensorFlow takes 6.3 s
# more to start, which it earns back only from about 19,000 faces. (On another
# machine TensorFlow was twice as fast as LiteRT: machines differ.)
BULK_TF_MIN_FACES = 20_000


@dataclass
class Conversion:
    """What a conversion is made from: the weights files' hashes and the shaping config."""

    weights_sha256: list[str]
    config: dict
    beside: Path | None
    threshold: float | None
    weights_source: str
    metadata: dict
    # A model folder's config: what it says of its embeddings, checked against the conversion's.
    claimed: dict | None = None
    # The conversion's quantisation (litert.QUANTIZATIONS), None for float32.
    quantization: str | None = None

    @property
    def backend(self) -> str:
        """The back-end's name: ``litert``, or ``litert-<quantization>``."""
        return "litert" if self.quantization is None else f"litert-{self.quantization}"

    def key(self) -> str:
        return cache.cache_key(self.weights_sha256, self.config, self.backend)


def load_encoder(model: str | os.PathLike | None = None, backbone: str | None = None, weights: str = PRETRAINED,
                 job: str = "single", backend: str = "auto"):
    """An encoder for ``job``: a saved model folder if ``model`` is given, else a backbone (default facenet).

    ``backend="auto"`` picks by job (see the module docstring of
    :mod:`embedkit.runtime`); ``tensorflow`` or ``litert`` force one. A bulk
    job's encoder switches to TensorFlow when told (``for_job``) that at least
    :data:`BULK_TF_MIN_FACES` faces are coming. The
    first LiteRT use of a model converts it with TensorFlow and caches the
    result; later runs load the cached conversion without TensorFlow.
    """
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; expected one of {', '.join(JOBS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if model is not None and backbone is not None:
        logger.info("--model given; ignoring backbone %s", backbone)
        backbone = None
    spec = None if model is not None else get_backbone(backbone or "facenet")
    if spec is not None and spec.runtime_loader is not None:
        if weights != PRETRAINED:
            raise ModelError(f"backbone {spec.name} only has its pretrained weights (got weights {weights!r})")
        return spec.runtime_loader(job=job, backend=backend)
    if backend == "tensorflow":
        return _tensorflow(model, backbone, weights)
    conversion = _conversion(model, spec, weights)
    if conversion is None or not litert.available():
        why = ("ai-edge-litert is not installed" if conversion is not None
               else "random weights, or weights without a pinned file, are not converted")
        if backend == "litert":
            raise ModelError(f"cannot run this model on LiteRT ({why})")
        logger.info("running on TensorFlow (%s)", why)
        return _tensorflow(model, backbone, weights)
    key = conversion.key()
    roots = cache.candidate_roots(conversion.beside)
    entry = cache.find_entry(key, roots)
    if entry is None:
        encoder = _tensorflow(model, backbone, weights)
        entry = _convert(encoder, conversion, key, roots)
        if entry is None:
            if backend == "litert":
                raise ModelError("the LiteRT conversion failed; see the log (-v)")
            return encoder
    encoder = _compiled(entry, conversion)
    if job == "bulk" and backend == "auto":
        encoder.bulk_loader = lambda: _tensorflow(model, backbone, weights)
        encoder.bulk_min_faces = BULK_TF_MIN_FACES
    return encoder


def _tensorflow(model, backbone, weights):
    from embedkit.encoder import load_encoder as load_tf_encoder
    from embedkit.runtime.tf import import_tensorflow

    import_tensorflow()
    return load_tf_encoder(model, backbone, weights)


def _conversion(model, spec, weights: str) -> Conversion | None:
    """What the encoder would be built from, found without TensorFlow; None if not convertible."""
    from embedkit.hashing import sha256_of

    if model is not None:
        folder = Path(model)
        from embedkit.encoder import WEIGHTS_FILE, read_model_config

        config = read_model_config(folder)  # a damaged config is one ModelError, before anything is built
        try:
            weights_sha = sha256_of(folder / WEIGHTS_FILE)
        except OSError:
            return None  # the TensorFlow loader says what is wrong with the folder
        shaping = {key: config.get(key) for key in ("backbone", "preprocessing", "head_units")}
        claimed = {"model_id": config.get("model_id"), "embedding_dim": config.get("embedding_dim"), "folder": folder}
        return Conversion([weights_sha], shaping, folder, config.get("threshold"), "finetuned",
                          config.get("metadata", {}), claimed)
    if weights == RANDOM:
        return None
    preprocessing = spec.preprocessing
    shaping = {"backbone": spec.name, "preprocessing": preprocessing.get_config(), "head_units": []}
    if weights == PRETRAINED:
        if spec.pinned_weights is None:
            return None
        from embedkit.backbones.weights import ensure_weights

        path = ensure_weights(spec.pinned_weights)
        return Conversion([spec.pinned_weights.sha256], shaping, path.parent, spec.threshold, PRETRAINED, {},
                          quantization=spec.litert_quantization)
    from embedkit.backbones.weights import local_weights_file

    path = local_weights_file(weights)
    return Conversion([sha256_of(path)], shaping, path.parent, None, str(path), {})


def _convert(encoder, conversion: Conversion, key: str, roots) -> cache.Entry | None:
    logger.warning("Converting the %s encoder for fast start-up (once; cached)", encoder.backbone)
    try:
        flatbuffer = litert.convert(encoder, conversion.quantization)
    except Exception as exc:  # the TensorFlow encoder still works: use it
        logger.warning("could not convert the encoder to LiteRT (%s); using TensorFlow", exc)
        return None
    meta = {"backend": conversion.backend, "quantization": conversion.quantization, "model_id": encoder.model_id,
            "embedding_dim": encoder.embedding_dim, "backbone": encoder.backbone, "preprocessing": encoder.preprocessing.get_config(),
            "weights_sha256": conversion.weights_sha256, "config": conversion.config}
    entry = cache.write_entry(key, roots, flatbuffer, litert.MODEL_FILE, meta)
    if entry is None:
        logger.warning("could not cache the conversion; the next run converts again")
    return entry


def _check_claims(entry: cache.Entry, conversion: Conversion) -> None:
    """A model folder's config must describe the weights converted (as :meth:`Encoder.load` checks)."""
    claimed = conversion.claimed
    if not claimed:
        return
    folder = claimed["folder"]
    dim = entry.meta.get("embedding_dim")
    if claimed.get("embedding_dim") is not None and claimed["embedding_dim"] != dim:
        raise ModelError(f"{folder}: config says {claimed['embedding_dim']}-d embeddings, the network makes {dim}-d")
    if claimed.get("model_id") != entry.model_id:
        raise ModelError(
            f"{folder}: the weights are not the ones this model was saved with (config model id "
            f"{claimed.get('model_id')}, weights give {entry.model_id}); the folder was changed after saving"
        )


def _compiled(entry: cache.Entry, conversion: Conversion):
    from embedkit.runtime.compiled import CompiledEncoder

    _check_claims(entry, conversion)
    meta = entry.meta
    path = entry.model_path
    return CompiledEncoder(meta["backbone"], Preprocessing.from_config(meta["preprocessing"]),
                           meta["embedding_dim"], entry.model_id, lambda: litert.LiteRTModel(path), conversion.backend,
                           conversion.threshold, conversion.weights_source, conversion.metadata)
