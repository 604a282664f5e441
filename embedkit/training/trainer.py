"""The fit loop: Siamese pairs through a shared encoder, contrastive loss, early stopping.

:func:`finetune` runs a whole job: read the labelled photos, split people into
train / validation / test, align every face once (plus augmented copies), then
train in up to two phases:

1. ``head``: the backbone is frozen; its outputs are computed once and the
   projection head trains on them (an epoch takes seconds);
2. ``unfreeze``: the top ``unfreeze`` blocks of the backbone train with the
   head at a lower learning rate, on cached outputs of the last frozen layer.

Training from scratch (``unfreeze = -1``, the default for random weights) is
one phase over preprocessed crops. Both faces of a pair go through the same
network (shared weights). After each epoch the validation pairs are scored;
whenever their ROC AUC (at an equal AUC, their accuracy) improves on the best
so far, starting model included, the encoder is saved to the output folder (each file
replaced atomically) with a threshold calibrated on them, so an interrupted
run leaves the best model so far usable. At the end the test people are
scored with the encoder before training and the saved one, as text, JSON and
a ROC plot.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit.backbones import get_backbone
from embedkit.data.folders import LabelledImages, load_labelled_images
from embedkit.data.mining import hard_negative_pairs
from embedkit.data.pairs import sample_pairs
from embedkit.data.splits import Split, split_identities
from embedkit.encoder import Encoder
from embedkit.errors import EmbedkitError
from embedkit.evaluation.metrics import best_threshold, roc, roc_auc, verification_report
from embedkit.faces import FaceExtractor
from embedkit.losses import LOSSES
from embedkit.training.config import FinetuneConfig
from embedkit.training.dataset import FaceSet, build_face_set
from embedkit.training.features import FeatureSource, cache_features, feature_bridge, map_features, split_backbone

logger = logging.getLogger(__name__)

__all__ = ["finetune", "FinetuneResult", "REPORT_FILE", "REPORT_TEXT_FILE", "ROC_FILE"]

REPORT_FILE = "finetune_report.json"
REPORT_TEXT_FILE = "finetune_report.txt"
ROC_FILE = "roc.png"
MAX_AUTO_PAIRS = 30_000


@dataclass
class FinetuneResult:
    """What a run leaves: the saved folder, the report and its text."""

    out: Path
    encoder: Encoder
    report: dict
    text: str
    files: dict = field(default_factory=dict)


@dataclass
class _Phase:
    name: str
    blocks: int
    epochs: int
    learning_rate: float


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

    def __init__(self, network, tail, bn_training: bool, margin: float, loss: str, learning_rate: float):
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
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.variables)
        loss_fn = LOSSES[loss]

        def embed(x, training):
            if self.tail is not None:
                x = self.tail(x, training=training and bn_training)
            for layer in self.head:
                x = layer(x)
            return self.norm(x)

        def backbone_only(x):
            return self.tail(x, training=False) if self.tail is not None else x

        @tf.function(reduce_retracing=True)
        def train_step(xa, xb, same):
            n = tf.shape(xa)[0]
            with tf.GradientTape() as tape:
                emb = embed(tf.concat([xa, xb], axis=0), True)
                value = loss_fn(emb[:n], emb[n:], same, margin)
            grads = tape.gradient(value, self.variables)
            self.optimizer.apply_gradients(zip(grads, self.variables))
            return value

        self.train_step = train_step
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
    threshold, accuracy = best_threshold(scores, same)
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
             progress: bool = False) -> FinetuneResult:
    """Run a fine-tuning job; returns the saved encoder and the before/after report.

    ``images`` and ``split`` override reading ``config.data`` and drawing the
    split (e.g. LFW people split by the official folds).
    """
    from tqdm.auto import tqdm

    if not config.out:
        raise EmbedkitError("an output folder is needed (--out)")
    out = Path(config.out)
    spec = get_backbone(config.backbone)
    if config.loss not in LOSSES:
        raise EmbedkitError(f"unknown loss {config.loss!r}; valid losses: {', '.join(sorted(LOSSES))}")
    started = time.perf_counter()
    timings: dict = {}

    # -- data ---------------------------------------------------------------------------------
    if images is None:
        images = load_labelled_images(config.data, config.one_photo_per_person,
                                      max_images=config.max_images_per_person)
    if split is None:
        split = split_identities(images.labels, config.val_people, config.test_people, config.seed)
    split = split.with_names(images.names)
    logger.info("%d photos of %d people; split %s", len(images), np.unique(images.labels).size, split.summary())

    encoder = Encoder.from_backbone(config.backbone, weights=config.weights_source, input_size=config.input_size,
                                    head_units=config.head_units)
    identity = _identity_head(encoder.network, spec.output_dim)
    extractor = FaceExtractor(encoder.input_size, config.detector, config.center_crop)
    t0 = time.perf_counter()
    faces = build_face_set(images, split, extractor, config.n_augment_copies, config.seed, progress)
    timings["faces_s"] = time.perf_counter() - t0
    logger.info("crops: %s", faces.counts())

    train_idx = faces.indices("train")
    # One photo per person: a held-out "same" pair is two different augmented
    # copies of one photo (the original project's protocol), so validation and
    # test use the copies only, never the photo itself.
    copies_only = config.one_photo_per_person and config.n_augment_copies >= 2
    val_idx, test_idx = (_eval_indices(faces, part, copies_only) for part in ("val", "test"))
    train_labels = faces.labels[train_idx]
    val_pairs = sample_pairs(faces.labels[val_idx], config.eval_pairs, seed=config.seed + 1)
    test_pairs = sample_pairs(faces.labels[test_idx], config.eval_pairs, seed=config.seed + 2)
    n_pairs = _auto_pairs(config, len(train_idx))

    metadata = {
        "finetune": config.to_dict(),
        "split": split.to_dict(),
        "faces": {"extractor": extractor.describe(), "counts": faces.counts()},
        "history": [],
    }
    encoder.metadata = metadata
    encoder.weights_source = "finetuned"

    # -- training -----------------------------------------------------------------------------
    network = encoder.network
    backbone_model = next(layer for layer in network.layers if layer.name not in ("faces", "l2_normalize")
                          and not layer.name.startswith("head_dense_"))
    phases = _plan(config, len(spec.blocks))
    history = metadata["history"]
    best_key, best_weights, best_metrics = None, None, None
    before_test = None
    phase_times = []
    n_blocks = len(spec.blocks)
    deepest = max([phase.blocks for phase in phases if 0 <= phase.blocks < n_blocks], default=0)
    cached = None
    try:
        for phase_no, phase in enumerate(phases):
            t0 = time.perf_counter()
            if not 0 <= phase.blocks < n_blocks:  # the whole backbone trains: no frozen part to cache
                cut = split_backbone(backbone_model, spec.blocks, phase.blocks)
                source = FeatureSource(crops=faces.crops, preprocessing=encoder.preprocessing)
            else:
                # One pass over the images, at the lowest boundary any phase needs;
                # higher boundaries are computed from it (the layers between are frozen).
                if cached is None:
                    deep_cut = split_backbone(backbone_model, spec.blocks, deepest)
                    cached = cache_features(deep_cut.frozen, encoder.preprocessing, faces.crops, progress=progress,
                                            desc=f"caching {deep_cut.boundary} features")
                cut = split_backbone(backbone_model, spec.blocks, phase.blocks)
                features = cached
                if phase.blocks < deepest:
                    features = map_features(feature_bridge(backbone_model, spec.blocks, deepest, phase.blocks), cached)
                source = FeatureSource(features=features)
            cache_s = time.perf_counter() - t0
            trainable = _Trainable(network, cut.tail, phase.name == "scratch", config.margin, config.loss,
                                   phase.learning_rate)
            if before_test is None:
                before_test = trainable.embed(source, test_idx, backbone_only=True)
            metrics = _val_metrics(trainable.embed(source, val_idx), val_pairs, config.margin)
            history.append({"phase": phase.name, "epoch": 0, **metrics})
            if best_key is None:
                best_key, best_weights, best_metrics = _key(metrics), network.get_weights(), metrics
                _save(encoder, out, metrics["val_threshold"])
            logger.info("%s phase: %d trainable weights, start %s", phase.name,
                        sum(int(np.prod(v.shape)) for v in trainable.variables), metrics)

            epoch_times, stale = [], 0
            bar = tqdm(range(1, phase.epochs + 1), desc=phase.name, unit="epoch", disable=not progress)
            for epoch in bar:
                t1 = time.perf_counter()
                seed = config.seed + 1000 * (phase_no + 1) + epoch
                ia, ib, same = _epoch_pairs(train_labels, n_pairs, seed, config.hard_negatives, trainable, source,
                                            train_idx)
                losses = []
                steps = tqdm(range(0, len(ia), config.batch_size), desc=f"epoch {epoch}", unit="step",
                             leave=False, disable=not progress)
                for s in steps:
                    sl = slice(s, s + config.batch_size)
                    if len(ia[sl]) < 2:
                        continue
                    value = trainable.train_step(source.take(train_idx[ia[sl]]), source.take(train_idx[ib[sl]]),
                                                 same[sl].astype(np.float32))
                    losses.append(float(value))
                    if len(losses) % 20 == 0:
                        steps.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
                train_s = time.perf_counter() - t1
                metrics = _val_metrics(trainable.embed(source, val_idx), val_pairs, config.margin)
                epoch_s = time.perf_counter() - t1
                epoch_times.append(epoch_s)
                improved = _key(metrics) > best_key
                history.append({"phase": phase.name, "epoch": epoch, "train_loss": float(np.mean(losses)),
                                **metrics, "train_seconds": train_s, "epoch_seconds": epoch_s,
                                "improved": bool(improved)})
                bar.set_postfix(loss=f"{np.mean(losses):.4f}", val_auc=f"{metrics['val_auc']:.4f}",
                                val_acc=f"{metrics['val_accuracy']:.4f}")
                logger.info("%s epoch %d: loss %.4f, val auc %.5f acc %.4f (%.1f s)%s", phase.name, epoch,
                            np.mean(losses), metrics["val_auc"], metrics["val_accuracy"], epoch_s,
                            " *" if improved else "")
                if improved:
                    best_key, best_weights, best_metrics, stale = _key(metrics), network.get_weights(), metrics, 0
                    _save(encoder, out, metrics["val_threshold"])
                else:
                    stale += 1
                    if stale >= config.patience:
                        logger.info("%s: no validation improvement for %d epochs; stopping", phase.name, stale)
                        break
            bar.close()
            network.set_weights(best_weights)
            phase_times.append({"phase": phase.name, "boundary": cut.boundary,
                                "feature_shape": list(cut.feature_shape), "cache_seconds": cache_s,
                                "epochs_run": len(epoch_times),
                                "mean_epoch_seconds": float(np.mean(epoch_times)) if epoch_times else 0.0,
                                "epoch_seconds": epoch_times, "pairs_per_epoch": n_pairs})
    except KeyboardInterrupt:
        if best_key is not None:
            logger.warning("interrupted; the best model so far is saved in %s", out)
        raise

    # -- report on the test people --------------------------------------------------------------
    timings["total_train_s"] = time.perf_counter() - started
    saved = Encoder.load(out)
    saved.metadata["history"] = history  # every epoch, not only those up to the best one
    after_test = saved.encode(faces.crops[test_idx])
    ia, ib, same = test_pairs
    before_scores, after_scores = _pair_scores(before_test, ia, ib), _pair_scores(after_test, ia, ib)
    before_name = f"{config.backbone} ({'random init' if config.weights_source == 'random' else config.weights_source})"
    report = {
        "backbone": config.backbone,
        "before_name": before_name,
        "test": {"people": len(split.test), "crops": int(test_idx.size), "pairs": int(ia.size),
                 "same_pairs": int(same.sum()), "augmented_copies_only": bool(copies_only)},
        "before": verification_report(before_scores, same, seed=config.seed),
        "after": verification_report(after_scores, same, seed=config.seed),
        "after_at_val_threshold": float(np.mean((after_scores >= saved.threshold) == same)),
        "threshold": saved.threshold,
        "best_validation": best_metrics,
        "identity_head_init": identity,
        "split": split.summary(),
        "crops": faces.counts(),
        "n_skipped": len(faces.skipped),
        "skipped": faces.skipped,
        "phases": phase_times,
        "timings": timings,
        "model_id": saved.model_id,
    }
    files = _write_report(out, report, before_scores, after_scores, same, before_name)
    report["files"] = {k: str(v) for k, v in files.items()}
    saved.metadata["report"] = _compact(report)
    saved.save(out)
    text = format_report(report)
    (out / REPORT_TEXT_FILE).write_text(text + "\n", errors="surrogateescape")  # names may hold non-UTF-8 bytes
    logger.info("fine-tuned model saved in %s", out)
    return FinetuneResult(out, saved, report, text, files)


def _save(encoder: Encoder, out: Path, threshold: float) -> None:
    encoder.threshold = float(threshold)
    encoder.save(out)


def _compact(report: dict) -> dict:
    keep = ("accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e-2", "tar_at_far_1e-3", "threshold")
    out = {k: v for k, v in report.items() if k not in ("before", "after", "files")}
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
    """The before/after report as plain text."""
    b, a = report["before"], report["after"]
    test = report["test"]
    rows = [("pair accuracy", "accuracy"), ("ROC AUC", "auc"), ("EER", "eer"), ("TAR @ FAR 1e-2", "tar_at_far_1e-2"),
            ("TAR @ FAR 1e-3", "tar_at_far_1e-3")]
    lines = [f"Test: {test['people']} people, {test['crops']} crops, {test['pairs']} pairs ({test['same_pairs']} same)",
             f"{'':18}{'before':>12}{'after':>12}"]
    for title, key in rows:
        lines.append(f"{title:18}{b[key]:12.4f}{a[key]:12.4f}")
    lines.append(f"before = {report['before_name']}; after = fine-tuned, saved model")
    lines.append(f"threshold {report['threshold']:.4f} (calibrated on validation pairs): test accuracy "
                 f"{report['after_at_val_threshold']:.4f}")
    for phase in report["phases"]:
        lines.append(f"phase {phase['phase']}: {phase['epochs_run']} epochs, {phase['mean_epoch_seconds']:.2f} s/epoch, "
                     f"features {tuple(phase['feature_shape'])} cached in {phase['cache_seconds']:.1f} s")
    if report.get("n_skipped"):
        lines.append(f"{report['n_skipped']} photos skipped (unreadable or no face; listed above and in the JSON)")
    return "\n".join(lines)
