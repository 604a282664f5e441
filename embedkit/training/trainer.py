"""The fit loop: a shared encoder trained on pairs (contrastive) or person-labelled batches (triplet).

:func:`finetune` runs a whole job in named steps:

1. :func:`_images_and_split`: read the labelled photos, split people into
   train / validation / test (identity-disjoint);
2. :func:`_face_set`: align every face once (plus augmented copies), or take
   the faces given; :func:`_shifted`: with ``shift``, every crop under that
   domain shift (the clean training crops kept for ``distill``'s teacher);
3. :func:`split_held_out`: the validation and test pairs; :func:`_teacher_targets`:
   for ``distill``, the starting model's embeddings of the clean training crops;
4. :func:`_fit`: train in up to two phases, ``head`` (the backbone frozen,
   its outputs computed once, optionally kept in ``feature_cache``) and
   ``unfreeze`` (the top ``unfreeze`` blocks train with the head at a lower
   learning rate, on cached outputs of the last frozen layer). Training from
   scratch (``unfreeze = -1``, the default for random weights) is one phase
   over preprocessed crops. After each epoch the validation pairs are scored;
   whenever their ROC AUC (at an equal AUC, their accuracy) improves on the
   best so far, starting model included, the encoder is saved to the output
   folder (each file replaced atomically) with a threshold calibrated on
   them (the one best with same and different pairs weighed equally, since a
   validation folder allows far fewer same pairs than different ones), so
   an interrupted run leaves the best model so far usable;
5. :func:`_test_report`: the test people scored on the same pairs with the
   encoder before training and the saved one, each at the threshold of its
   own validation pairs, with McNemar's paired test; as text, JSON and a ROC
   plot.

Everything is seeded from ``config.seed`` (NumPy draws, Keras initialisation
through ``keras.utils.set_random_seed``), so a run reproduces.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit.backbones import RANDOM, get_backbone
from embedkit.data.batches import identity_batches
from embedkit.data.folders import LabelledImages, drop_duplicates, load_labelled_images
from embedkit.data.mining import hard_negative_pairs
from embedkit.data.pairs import sample_pairs
from embedkit.data.splits import Split, split_identities
from embedkit.encoder import Encoder
from embedkit.errors import EmbedkitError
from embedkit.evaluation.metrics import (
    best_threshold,
    mcnemar,
    roc,
    roc_auc,
    small_sample_warnings,
    verification_report,
)
from embedkit.evaluation.reference import METADATA_KEY, ImpostorReference
from embedkit.faces import FaceExtractor
from embedkit.losses import CONTRASTIVE_MARGIN, LOSSES
from embedkit.training.config import FinetuneConfig
from embedkit.training.dataset import FaceSet, build_face_set, shifted_face_set
from embedkit.training.features import FeatureSource, cache_features, feature_bridge, map_features, split_backbone

logger = logging.getLogger(__name__)

__all__ = ["finetune", "FinetuneResult", "REPORT_FILE", "REPORT_TEXT_FILE", "ROC_FILE", "seed_everything",
           "split_held_out"]

REPORT_FILE = "finetune_report.json"
REPORT_TEXT_FILE = "finetune_report.txt"
ROC_FILE = "roc.png"
MAX_AUTO_PAIRS = 30_000


@dataclass
class FinetuneResult:
    """What a run leaves: the saved folder, the report and its text.

    ``test_indices`` are the face-set rows of the test items and
    ``test_embeddings`` their embeddings ``{"before", "after"}`` (row k of
    each belongs to ``test_indices[k]``), for scoring other pairs of them.
    """

    out: Path
    encoder: Encoder
    report: dict
    text: str
    files: dict = field(default_factory=dict)
    test_indices: np.ndarray | None = None
    test_embeddings: dict = field(default_factory=dict)


@dataclass
class _Phase:
    name: str
    blocks: int
    epochs: int
    learning_rate: float


@dataclass
class _HeldOut:
    """Which face-set rows train, validate and test, and the evaluation pairs (indices into val/test rows)."""

    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray
    test: np.ndarray
    val_pairs: tuple
    test_pairs: tuple
    copies_only: bool
    train_targets: np.ndarray | None = None

    @property
    def train_classes(self) -> np.ndarray:
        """The training people numbered ``0 .. K-1`` (``classes`` losses)."""
        return np.unique(self.train_labels, return_inverse=True)[1]


@dataclass
class _Fit:
    """What training leaves behind for the report."""

    history: list
    best_metrics: dict
    before_test: np.ndarray
    before_threshold: float
    phases: list


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's global and the backend's generators (Keras weight initialisation)."""
    import keras

    keras.utils.set_random_seed(int(seed))


def _plan(config: FinetuneConfig, n_blocks: int) -> list[_Phase]:
    if config.from_scratch:
        return [_Phase("scratch", -1, config.epochs, config.first_learning_rate)]
    phases = []
    if config.head_units and config.epochs > 0:
        phases.append(_Phase("head", 0, config.epochs, config.first_learning_rate))
    blocks = config.unfreeze_blocks
    if blocks > 0:
        if blocks > n_blocks:
            raise EmbedkitError(f"--unfreeze {blocks}: backbone {config.backbone} has only {n_blocks} blocks")
        epochs = config.epochs if config.unfreeze_epochs is None else config.unfreeze_epochs
        if epochs > 0:
            phases.append(_Phase(f"unfreeze{blocks}", blocks, epochs, config.unfreeze_learning_rate))
    if not phases:
        raise EmbedkitError("nothing to train: give a projection head (--head) or unfreeze backbone blocks (--unfreeze)")
    return phases


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _identity_head(network, backbone_dim: int) -> bool:
    """Start a single head layer as wide as the backbone as the identity map."""
    dense = [layer for layer in network.layers if layer.name.startswith("head_dense_")]
    if len(dense) != 1 or int(dense[0].units) != backbone_dim:
        return False
    kernel, bias = dense[0].get_weights()
    dense[0].set_weights([np.eye(backbone_dim, dtype=kernel.dtype), np.zeros_like(bias)])
    return True


class _Trainable:
    """The trainable top of the encoder: backbone tail (optional) -> head -> L2 norm."""

    def __init__(self, network, tail, bn_training: bool, margin: float, loss: str, learning_rate: float,
                 centres=None):
        import keras
        import tensorflow as tf

        self.tail = tail
        self.head = [layer for layer in network.layers if layer.name.startswith("head_dense_")]
        self.norm = network.get_layer("l2_normalize")
        self.variables = list(tail.trainable_weights if tail is not None else [])
        for layer in self.head:
            self.variables += list(layer.trainable_weights)
        if not self.variables:
            raise EmbedkitError("nothing to train in this phase")
        self.loss = LOSSES[loss]
        loss_fn = self.loss.function
        if self.loss.inputs == "classes":  # the identity head's centres learn with the encoder
            self.variables.append(centres)
            loss_fn = lambda emb, classes, m: self.loss.function(emb, classes, centres, m)  # noqa: E731
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.variables)

        def embed(x, training):
            if self.tail is not None:
                x = self.tail(x, training=training and bn_training)
            for layer in self.head:
                x = layer(x)
            return self.norm(x)

        def backbone_only(x):
            return self.tail(x, training=False) if self.tail is not None else x

        def apply(tape, value):
            grads = tape.gradient(value, self.variables)
            self.optimizer.apply_gradients(zip(grads, self.variables))
            return value

        @tf.function(reduce_retracing=True)
        def pair_step(xa, xb, same):
            n = tf.shape(xa)[0]
            with tf.GradientTape() as tape:
                emb = embed(tf.concat([xa, xb], axis=0), True)
                value = loss_fn(emb[:n], emb[n:], same, margin)
            return apply(tape, value)

        @tf.function(reduce_retracing=True)
        def label_target_step(x, labels, targets):
            with tf.GradientTape() as tape:
                value = loss_fn(embed(x, True), labels, targets, margin)
            return apply(tape, value)

        @tf.function(reduce_retracing=True)
        def label_step(x, labels):  # person labels or classes, or target embeddings (``targets`` losses)
            with tf.GradientTape() as tape:
                value = loss_fn(embed(x, True), labels, margin)
            return apply(tape, value)

        self.pair_step = pair_step
        self.label_step = label_step
        self.label_target_step = label_target_step
        self.infer = tf.function(lambda x: embed(x, False), reduce_retracing=True)
        self.backbone_only = tf.function(backbone_only, reduce_retracing=True)

    def embed(self, source: FeatureSource, indices, batch_size: int = 256, backbone_only: bool = False) -> np.ndarray:
        fn = self.backbone_only if backbone_only else self.infer
        parts = [fn(source.take(indices[s:s + batch_size])).numpy() for s in range(0, len(indices), batch_size)]
        out = np.concatenate(parts).astype(np.float32)
        return _l2(out.reshape(len(out), -1))


def _eval_indices(faces: FaceSet, part: str, copies_only: bool) -> np.ndarray:
    idx = faces.indices(part)
    return idx[faces.augmented[idx]] if copies_only else idx


def _pair_scores(emb: np.ndarray, ia, ib) -> np.ndarray:
    return np.sum(emb[ia] * emb[ib], axis=1)


def _val_metrics(emb, pairs, margin) -> dict:
    ia, ib, same = pairs
    scores = _pair_scores(emb, ia, ib)
    fpr, tpr, _ = roc(scores, same)
    threshold, accuracy = best_threshold(scores, same, balanced=True)
    distance = np.sqrt(np.maximum(2.0 - 2.0 * scores, 0.0))
    loss = 0.5 * np.where(same, distance**2, np.maximum(margin - distance, 0.0) ** 2).mean()
    return {"val_auc": roc_auc(fpr, tpr), "val_accuracy": accuracy, "val_threshold": threshold,
            "val_loss": float(loss)}


def _key(metrics: dict) -> tuple:
    # Verification only: a lower validation loss alone does not replace the model
    # (over pretrained weights it falls while test accuracy drops, e.g. AT&T).
    return (round(metrics["val_auc"], 5), round(metrics["val_accuracy"], 4))


def _epoch_pairs(labels: np.ndarray, n_pairs: int, seed: int, hard_fraction: float, trainable, source, train_idx):
    ia, ib, same = sample_pairs(labels, n_pairs, seed=seed)
    if hard_fraction > 0:
        different = np.flatnonzero(~same)
        n_hard = int(round(hard_fraction * different.size))
        if n_hard:
            emb = trainable.embed(source, train_idx)
            ha, hb = hard_negative_pairs(emb, labels, n_hard, seed=seed + 1)
            ia[different[:n_hard]], ib[different[:n_hard]] = ha, hb
    return ia, ib, same


def _auto_pairs(config: FinetuneConfig, n_train: int) -> int:
    if config.pairs_per_epoch:
        return config.pairs_per_epoch
    return int(min(max(5 * n_train, 2000), MAX_AUTO_PAIRS))


def finetune(config: FinetuneConfig, images: LabelledImages | None = None, split: Split | None = None,
             progress: bool = False, faces: FaceSet | None = None) -> FinetuneResult:
    """Run a fine-tuning job; returns the saved encoder and the before/after report.

    ``images`` and ``split`` override reading ``config.data`` and drawing the
    split (e.g. LFW people split by the official folds); ``faces`` (with
    them) overrides aligning the photos: aligned crops made beforehand, e.g.
    cached or under a domain shift (:mod:`embedkit.data.shifts`).
    """
    if not config.out:
        raise EmbedkitError("an output folder is needed (--out)")
    if faces is not None and (images is None or split is None):
        raise EmbedkitError("faces given without the images and split they came from")
    out = Path(config.out)
    spec = get_backbone(config.backbone)
    seed_everything(config.seed)
    started = time.perf_counter()

    images, split, duplicates = _images_and_split(config, images, split, dedupe=faces is None)
    encoder = Encoder.from_backbone(config.backbone, weights=config.weights_source, input_size=config.input_size,
                                    head_units=config.head_units)
    identity = _identity_head(encoder.network, spec.output_dim)
    t0 = time.perf_counter()
    faces, extractor = _face_set(config, images, split, encoder, faces, progress)
    faces, clean_crops = _shifted(config, faces)
    timings = {"faces_s": time.perf_counter() - t0}
    held_out = split_held_out(config, faces)
    _check_trainable_data(config, held_out)
    if "targets" in LOSSES[config.loss].inputs:
        held_out.train_targets = _teacher_targets(config, encoder, clean_crops[held_out.train], progress)

    encoder.metadata = {
        "finetune": config.to_dict(),
        "split": split.to_dict(),
        "faces": {"extractor": extractor, "counts": faces.counts(), "duplicates_dropped": duplicates},
        "history": [],
    }
    encoder.weights_source = "finetuned"
    fit = _fit(config, encoder, faces, held_out, out, progress)
    timings["total_train_s"] = time.perf_counter() - started
    return _test_report(config, out, split, faces, held_out, fit, identity, timings)


def _images_and_split(config: FinetuneConfig, images, split, dedupe: bool) -> tuple[LabelledImages, Split, list]:
    """The labelled photos, byte-identical copies removed before people are split, and the split."""
    if images is None:
        images = load_labelled_images(config.data, config.one_photo_per_person,
                                      max_images=config.max_images_per_person)
    duplicates = []
    if dedupe:
        images, duplicates = drop_duplicates(images)
    if split is None:
        split = split_identities(images.labels, config.val_people, config.test_people, config.seed)
    split = split.with_names(images.names)
    logger.info("%d photos of %d people; split %s", len(images), np.unique(images.labels).size, split.summary())
    return images, split, duplicates


def _face_set(config: FinetuneConfig, images, split, encoder: Encoder, faces, progress) -> tuple[FaceSet, dict]:
    """The aligned crops of the split's people (made here unless given) and how they were made."""
    if faces is not None:
        if faces.crops.shape[1:] != (encoder.input_size, encoder.input_size, 3):
            raise EmbedkitError(f"faces of shape {faces.crops.shape[1:]} given; the encoder takes "
                                f"{encoder.input_size}x{encoder.input_size}")
        return faces, {"given": True, "size": encoder.input_size}
    extractor = FaceExtractor(encoder.input_size, config.detector, config.center_crop)
    faces = build_face_set(images, split, extractor, config.n_augment_copies, config.seed, progress)
    logger.info("crops: %s", faces.counts())
    return faces, extractor.describe()


def _shifted(config: FinetuneConfig, faces: FaceSet) -> tuple[FaceSet, np.ndarray]:
    """The face set under ``config.shift`` (:func:`shifted_face_set`) and the clean crops."""
    if config.shift is None:
        return faces, faces.crops
    logger.info("every crop under the %s shift", config.shift)
    return shifted_face_set(faces, config.shift, config.seed), faces.crops


def _teacher_targets(config: FinetuneConfig, encoder: Encoder, clean_crops: np.ndarray, progress: bool) -> np.ndarray:
    """The starting encoder's embeddings of the clean training crops (kept in ``feature_cache``)."""
    path = None
    if config.feature_cache:
        head = f"teacher head {config.head_units} seed {config.seed}"
        path = Path(config.feature_cache) / f"teacher_{_features_key(config, clean_crops, head)}.npy"
        targets = _load_cached(path, (len(clean_crops), encoder.embedding_dim))
        if targets is not None:
            logger.info("teacher embeddings from %s", path)
            return targets
    t0 = time.perf_counter()
    targets = encoder.encode(clean_crops)
    encoder.refresh()  # its compiled graph holds the starting weights
    logger.info("teacher embeddings of %d clean training crops in %.0f s", len(clean_crops), time.perf_counter() - t0)
    if path is not None:
        _store_cached(path, targets)
    return targets


def split_held_out(config: FinetuneConfig, faces: FaceSet) -> _HeldOut:
    """Which rows train, validate and test, and the validation and test pairs every run scores
    (sampled with ``config.seed + 1`` and ``+ 2``): the one rule, for benchmarks that score a saved
    model on the trainer's own pairs too."""
    # One photo per person: a held-out "same" pair is two different augmented
    # copies of one photo (the original project's protocol), so validation and
    # test use the copies only, never the photo itself.
    copies_only = config.one_photo_per_person and config.n_augment_copies >= 2
    val_idx, test_idx = (_eval_indices(faces, part, copies_only) for part in ("val", "test"))
    train_idx = faces.indices("train")
    return _HeldOut(train_idx, faces.labels[train_idx], val_idx, test_idx,
                    sample_pairs(faces.labels[val_idx], config.eval_pairs, seed=config.seed + 1),
                    sample_pairs(faces.labels[test_idx], config.eval_pairs, seed=config.seed + 2), copies_only)


def _check_trainable_data(config: FinetuneConfig, held_out: _HeldOut) -> None:
    """A loss that mines triplets in batches needs people with several training faces."""
    if LOSSES[config.loss].inputs not in ("labels", "classes", "labels+targets"):
        return
    _, counts = np.unique(held_out.train_labels, return_counts=True)
    if int(np.sum(counts >= 2)) < 2:
        raise EmbedkitError(f"--loss {config.loss} needs at least two training people with two or more faces; "
                            f"found {int(np.sum(counts >= 2))} (use --augment-copies, or --loss contrastive)")


def _backbone_layer(network):
    return next(layer for layer in network.layers if layer.name not in ("faces", "l2_normalize")
                and not layer.name.startswith("head_dense_"))


def _features_key(config: FinetuneConfig, crops: np.ndarray, boundary: str) -> str:
    """Content key of a frozen pass: the crops' bytes, the backbone, its weights and the cut."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(crops).data)
    weights = config.weights_source
    if weights == RANDOM:
        weights = f"random seed {config.seed}"  # seeded initialisation
    elif Path(weights).is_file():
        stat = Path(weights).stat()
        weights = f"{Path(weights).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    digest.update(f"|{crops.shape}|{config.backbone}|{weights}|{config.input_size}|{boundary}".encode())
    return digest.hexdigest()[:24]


def _cache_path(config: FinetuneConfig, crops: np.ndarray, boundary: str) -> Path:
    return Path(config.feature_cache) / f"features_{_features_key(config, crops, boundary)}.npy"


def _load_cached(path: Path, shape: tuple) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        features = np.load(path, allow_pickle=False)
        if features.shape == shape:
            return features
    except (OSError, ValueError):
        pass
    logger.warning("%s: unusable cached features; computing them again", path)
    return None


def _store_cached(path: Path, features: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, features)
    tmp.replace(path)


class _Sources:
    """What each phase trains on: one frozen pass at the lowest boundary any phase needs;
    higher boundaries are computed from it (the layers between are frozen). With
    ``feature_cache``, a pass cached at that boundary or a lower one is reused."""

    def __init__(self, config: FinetuneConfig, encoder: Encoder, faces: FaceSet, phases: list, progress: bool):
        self.config, self.encoder, self.faces, self.progress = config, encoder, faces, progress
        self.blocks = get_backbone(config.backbone).blocks
        self.backbone = _backbone_layer(encoder.network)
        self.deepest = max([p.blocks for p in phases if 0 <= p.blocks < len(self.blocks)], default=0)
        self.cached = None

    def for_phase(self, phase: _Phase):
        if not 0 <= phase.blocks < len(self.blocks):  # the whole backbone trains: no frozen part to cache
            cut = split_backbone(self.backbone, self.blocks, phase.blocks)
            return cut, FeatureSource(crops=self.faces.crops, preprocessing=self.encoder.preprocessing)
        if self.cached is None:
            self.cached = self._frozen_features()
        cut = split_backbone(self.backbone, self.blocks, phase.blocks)
        features = self.cached
        if phase.blocks < self.deepest:
            features = map_features(feature_bridge(self.backbone, self.blocks, self.deepest, phase.blocks),
                                    self.cached)
        return cut, FeatureSource(features=features)

    def _frozen_features(self) -> np.ndarray:
        crops, config = self.faces.crops, self.config
        if config.feature_cache:
            for n in range(self.deepest, len(self.blocks)):  # this boundary, then lower ones
                cut = split_backbone(self.backbone, self.blocks, n)
                path = _cache_path(config, crops, cut.boundary)
                features = _load_cached(path, (len(crops),) + tuple(cut.feature_shape))
                if features is not None:
                    logger.info("frozen %s features from %s", cut.boundary, path)
                    if n > self.deepest:
                        features = map_features(feature_bridge(self.backbone, self.blocks, n, self.deepest),
                                                features)
                        deep_cut = split_backbone(self.backbone, self.blocks, self.deepest)
                        _store_cached(_cache_path(config, crops, deep_cut.boundary), features)
                    return features
        cut = split_backbone(self.backbone, self.blocks, self.deepest)
        features = cache_features(cut.frozen, self.encoder.preprocessing, crops, progress=self.progress,
                                  desc=f"caching {cut.boundary} features")
        if config.feature_cache:
            _store_cached(_cache_path(config, crops, cut.boundary), features)
        return features


class _Best:
    """The best validation result so far; each improvement is saved to the model folder."""

    def __init__(self, encoder: Encoder, out: Path):
        self.encoder, self.out = encoder, out
        self.key, self.weights, self.metrics = None, None, None

    def offer(self, metrics: dict) -> bool:
        if self.key is not None and _key(metrics) <= self.key:
            return False
        self.key, self.weights, self.metrics = _key(metrics), self.encoder.network.get_weights(), metrics
        _save(self.encoder, self.out, metrics["val_threshold"])
        return True


def _fit(config: FinetuneConfig, encoder: Encoder, faces: FaceSet, held_out: _HeldOut, out: Path,
         progress: bool) -> _Fit:
    """Every phase of the plan; the network ends with the best validation weights."""
    phases = _plan(config, len(get_backbone(config.backbone).blocks))
    sources = _Sources(config, encoder, faces, phases, progress)
    history = encoder.metadata["history"]
    best = _Best(encoder, out)
    before_test = before_threshold = None
    phase_times = []
    val_margin = config.loss_margin if LOSSES[config.loss].inputs == "pairs" else CONTRASTIVE_MARGIN
    centres = _centres_variable(config, encoder, held_out)
    try:
        for phase_no, phase in enumerate(phases):
            t0 = time.perf_counter()
            cut, source = sources.for_phase(phase)
            cache_s = time.perf_counter() - t0
            trainable = _Trainable(encoder.network, cut.tail, phase.name == "scratch", config.loss_margin,
                                   config.loss, phase.learning_rate, centres)
            if centres is not None and phase_no == 0:
                centres.assign(_class_means(trainable.embed(source, held_out.train), held_out.train_classes))
            if before_test is None:
                before_test = trainable.embed(source, held_out.test, backbone_only=True)
                before_val = _val_metrics(trainable.embed(source, held_out.val, backbone_only=True),
                                          held_out.val_pairs, val_margin)
                before_threshold = before_val["val_threshold"]
            metrics = _val_metrics(trainable.embed(source, held_out.val), held_out.val_pairs, val_margin)
            history.append({"phase": phase.name, "epoch": 0, **metrics})
            if best.key is None:
                best.offer(metrics)
            logger.info("%s phase: %d trainable weights, start %s", phase.name,
                        sum(int(np.prod(v.shape)) for v in trainable.variables), metrics)
            epoch_times = _run_phase(config, phase, phase_no, trainable, source, held_out, best, history,
                                     val_margin, progress)
            encoder.network.set_weights(best.weights)
            phase_times.append({"phase": phase.name, "boundary": cut.boundary,
                                "feature_shape": list(cut.feature_shape), "cache_seconds": cache_s,
                                "epochs_run": len(epoch_times),
                                "mean_epoch_seconds": float(np.mean(epoch_times)) if epoch_times else 0.0,
                                "epoch_seconds": epoch_times,
                                "pairs_per_epoch": _auto_pairs(config, len(held_out.train))})
    except KeyboardInterrupt:
        if best.key is not None:
            logger.warning("interrupted; the best model so far is saved in %s", out)
        raise
    return _Fit(history, best.metrics, before_test, before_threshold, phase_times)


def _centres_variable(config: FinetuneConfig, encoder: Encoder, held_out: _HeldOut):
    """The identity head's centres (``classes`` losses; None otherwise), one per training person."""
    if LOSSES[config.loss].inputs != "classes":
        return None
    import tensorflow as tf

    n_classes = int(held_out.train_classes.max()) + 1
    return tf.Variable(np.zeros((n_classes, encoder.embedding_dim), dtype=np.float32), name="class_centres")


def _class_means(embeddings: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each class's mean embedding, unit length: the centres start where the starting model puts each person."""
    sums = np.zeros((int(classes.max()) + 1, embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, classes, embeddings)
    return _l2(sums).astype(np.float32)


def _run_phase(config: FinetuneConfig, phase: _Phase, phase_no: int, trainable: _Trainable, source, held_out,
               best: _Best, history: list, val_margin: float, progress: bool) -> list[float]:
    """The epochs of one phase, with early stopping; returns each epoch's seconds."""
    from tqdm.auto import tqdm

    epoch_times, stale = [], 0
    bar = tqdm(range(1, phase.epochs + 1), desc=phase.name, unit="epoch", disable=not progress)
    for epoch in bar:
        t1 = time.perf_counter()
        seed = config.seed + 1000 * (phase_no + 1) + epoch
        losses = _train_epoch(config, trainable, source, held_out, seed, progress, f"epoch {epoch}")
        train_s = time.perf_counter() - t1
        metrics = _val_metrics(trainable.embed(source, held_out.val), held_out.val_pairs, val_margin)
        epoch_s = time.perf_counter() - t1
        epoch_times.append(epoch_s)
        improved = best.offer(metrics)
        history.append({"phase": phase.name, "epoch": epoch, "train_loss": float(np.mean(losses)),
                        **metrics, "train_seconds": train_s, "epoch_seconds": epoch_s, "improved": bool(improved)})
        bar.set_postfix(loss=f"{np.mean(losses):.4f}", val_auc=f"{metrics['val_auc']:.4f}",
                        val_acc=f"{metrics['val_accuracy']:.4f}")
        logger.info("%s epoch %d: loss %.4f, val auc %.5f acc %.4f (%.1f s)%s", phase.name, epoch,
                    np.mean(losses), metrics["val_auc"], metrics["val_accuracy"], epoch_s, " *" if improved else "")
        stale = 0 if improved else stale + 1
        if stale >= config.patience:
            logger.info("%s: no validation improvement for %d epochs; stopping", phase.name, stale)
            break
    bar.close()
    return epoch_times


def _train_epoch(config: FinetuneConfig, trainable: _Trainable, source, held_out: _HeldOut, seed: int,
                 progress: bool, desc: str) -> list[float]:
    """One epoch of steps; a triplet epoch embeds as many faces as a pair epoch."""
    from tqdm.auto import tqdm

    train_idx, labels = held_out.train, held_out.train_labels
    n_pairs = _auto_pairs(config, len(train_idx))
    if trainable.loss.inputs in ("labels", "classes", "labels+targets"):
        n_batches = max(1, -(-n_pairs // config.batch_size))
        batches = identity_batches(labels, n_batches, 2 * config.batch_size, config.faces_per_person, seed)
        names = held_out.train_classes if trainable.loss.inputs == "classes" else labels
        if trainable.loss.inputs == "labels+targets":
            steps = [(trainable.label_target_step, (train_idx[b], names[b], held_out.train_targets[b])) for b in batches]
        else:
            steps = [(trainable.label_step, (train_idx[b], names[b])) for b in batches]
    elif trainable.loss.inputs == "targets":
        order = np.random.default_rng(seed).permutation(np.resize(np.arange(len(train_idx)), 2 * n_pairs))
        steps = [(trainable.label_step, (train_idx[b], held_out.train_targets[b]))
                 for b in np.array_split(order, max(1, -(-n_pairs // config.batch_size)))]
    else:
        ia, ib, same = _epoch_pairs(labels, n_pairs, seed, config.hard_negatives, trainable, source, train_idx)
        steps = []
        for s in range(0, len(ia), config.batch_size):
            sl = slice(s, s + config.batch_size)
            if len(ia[sl]) >= 2:
                steps.append((trainable.pair_step, (train_idx[ia[sl]], train_idx[ib[sl]], same[sl])))
    losses = []
    bar = tqdm(steps, desc=desc, unit="step", leave=False, disable=not progress)
    for step, args in bar:
        if step is trainable.pair_step:
            a, b, same = args
            args = (source.take(a), source.take(b), same.astype(np.float32))
        else:
            rows, *rest = args
            args = (source.take(rows), *rest)
        losses.append(float(step(*args)))
        if len(losses) % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    return losses


def _test_report(config: FinetuneConfig, out: Path, split: Split, faces: FaceSet, held_out: _HeldOut, fit: _Fit,
                 identity: bool, timings: dict) -> FinetuneResult:
    """Score the test people's pairs before and after training, on the same pairs; save the report."""
    saved = Encoder.load(out)
    saved.metadata["history"] = fit.history  # every epoch, not only those up to the best one
    after_test = saved.encode(faces.crops[held_out.test])
    ia, ib, same = held_out.test_pairs
    before_scores, after_scores = _pair_scores(fit.before_test, ia, ib), _pair_scores(after_test, ia, ib)
    before_correct = (before_scores >= fit.before_threshold) == same
    after_correct = (after_scores >= saved.threshold) == same
    before_name = f"{config.backbone} ({'random init' if config.weights_source == 'random' else config.weights_source})"
    test = {"people": len(split.test), "crops": int(held_out.test.size), "pairs": int(ia.size),
            "same_pairs": int(same.sum()), "different_pairs": int((~same).sum()),
            "augmented_copies_only": bool(held_out.copies_only)}
    report = {
        "backbone": config.backbone,
        "loss": config.loss,
        "before_name": before_name,
        "test": test,
        "headline": {
            "protocol": "test people's pairs; before and after each at the threshold best on its own "
                        "validation pairs (never chosen on test pairs); McNemar's exact test on the same pairs",
            "before_accuracy": float(before_correct.mean()),
            "after_accuracy": float(after_correct.mean()),
            "before_threshold": float(fit.before_threshold),
            "after_threshold": float(saved.threshold),
            **mcnemar(before_correct, after_correct),
        },
        "warnings": small_sample_warnings(int(same.sum()), int((~same).sum()), len(split.test)),
        "before": verification_report(before_scores, same, seed=config.seed),
        "after": verification_report(after_scores, same, seed=config.seed),
        "after_at_val_threshold": float(after_correct.mean()),
        "threshold": saved.threshold,
        "best_validation": fit.best_metrics,
        "start_validation": fit.history[0],
        "identity_head_init": identity,
        "split": split.summary(),
        "crops": faces.counts(),
        "n_skipped": len(faces.skipped),
        "skipped": faces.skipped,
        "n_duplicates_dropped": len(saved.metadata.get("faces", {}).get("duplicates_dropped", [])),
        "phases": fit.phases,
        "timings": timings,
        "model_id": saved.model_id,
    }
    files = _write_report(out, report, before_scores, after_scores, same, before_name)
    report["files"] = {k: str(v) for k, v in files.items()}
    saved.metadata["report"] = _compact(report)
    saved.metadata[METADATA_KEY] = _impostor_reference(saved, faces.crops[held_out.val], held_out.val_pairs,
                                                       saved.metadata.get("faces", {}).get("extractor"))
    saved.save(out)
    text = format_report(report)
    (out / REPORT_TEXT_FILE).write_text(text + "\n", errors="surrogateescape")  # names may hold non-UTF-8 bytes
    logger.info("fine-tuned model saved in %s", out)
    return FinetuneResult(out, saved, report, text, files, held_out.test,
                          {"before": fit.before_test, "after": after_test})


def _save(encoder: Encoder, out: Path, threshold: float) -> None:
    encoder.threshold = float(threshold)
    encoder.save(out)


def _impostor_reference(encoder: Encoder, val_crops, val_pairs, face_setting) -> dict | None:
    """The saved model's validation impostor scores as a quantile table (see embedkit.evaluation.reference)."""
    ia, ib, same = val_pairs
    scores = _pair_scores(encoder.encode(val_crops), ia, ib)[~same]
    if scores.size < 2:
        return None
    about = {"source": "validation pairs of the fine-tuning run", "model_id": encoder.model_id,
             "face_setting": face_setting,
             "protocol": "pairs of two different validation people sampled by the trainer"}
    return ImpostorReference.from_scores(scores, about).to_dict()


def _compact(report: dict) -> dict:
    keep = ("accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e-2", "tar_at_far_1e-3", "threshold")
    out = {k: v for k, v in report.items() if k not in ("before", "after", "files", "skipped")}
    for side in ("before", "after"):
        out[side] = {k: report[side][k] for k in keep if k in report[side]}
    return out


def _write_report(out: Path, report: dict, before_scores, after_scores, same, before_name: str) -> dict:
    from embedkit.evaluation.plots import plot_roc

    out.mkdir(parents=True, exist_ok=True)
    fpr_b, tpr_b, _ = roc(before_scores, same)
    fpr_a, tpr_a, _ = roc(after_scores, same)
    roc_path = plot_roc({f"before: {before_name}": (fpr_b, tpr_b), "after: fine-tuned": (fpr_a, tpr_a)},
                        out / ROC_FILE, title=f"{report['backbone']}: test people, before and after fine-tuning")
    json_path = out / REPORT_FILE
    json_path.write_text(json.dumps(report, indent=2, default=float))
    return {"report_json": json_path, "report_text": out / REPORT_TEXT_FILE, "roc_png": roc_path}


def format_report(report: dict) -> str:
    """The before/after report as plain text: the headline at validation thresholds with McNemar's
    test and the class counts first, then threshold-free figures on the same pairs."""
    b, a = report["before"], report["after"]
    test, head = report["test"], report["headline"]
    rows = [("pair accuracy (CV)", "accuracy"), ("ROC AUC", "auc"), ("EER", "eer"),
            ("TAR @ FAR 1e-2", "tar_at_far_1e-2"), ("TAR @ FAR 1e-3", "tar_at_far_1e-3")]
    lines = [f"Test: {test['people']} people, {test['crops']} crops, {test['pairs']} pairs "
             f"({test['same_pairs']} same, {test['different_pairs']} different)",
             f"before = {report['before_name']}; after = fine-tuned ({report['loss']} loss), saved model",
             f"accuracy at the validation threshold: before {head['before_accuracy']:.4f} "
             f"(threshold {head['before_threshold']:.4f}), after {head['after_accuracy']:.4f} "
             f"(threshold {head['after_threshold']:.4f}, saved with the model)",
             f"McNemar: {head['only_before_right']} pairs right only before, {head['only_after_right']} only after, "
             f"p = {head['p_value']:.3g}: {head['verdict']}",
             f"{'':20}{'before':>12}{'after':>12}"]
    for title, key in rows:
        lines.append(f"{title:20}{b[key]:12.4f}{a[key]:12.4f}")
    lines.append("(CV: each tenth of the test pairs at the threshold best on the other nine; AUC, EER, TAR: all pairs)")
    for warning in report.get("warnings", []):
        lines.append(f"warning: {warning}")
    for phase in report["phases"]:
        lines.append(f"phase {phase['phase']}: {phase['epochs_run']} epochs, {phase['mean_epoch_seconds']:.2f} s/epoch, "
                     f"features {tuple(phase['feature_shape'])} cached in {phase['cache_seconds']:.1f} s")
    if report.get("n_skipped"):
        lines.append(f"{report['n_skipped']} photos skipped (unreadable or no face; listed above and in the JSON)")
    if report.get("n_duplicates_dropped"):
        lines.append(f"{report['n_duplicates_dropped']} byte-identical copies of other photos left out before the split")
    return "\n".join(lines)
