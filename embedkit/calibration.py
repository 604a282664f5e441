"""Same-person thresholds: which one applies, and calibrating one on the user's own people.

A threshold belongs to a model *and* a face setting (detector and alignment,
or the centre-crop fraction, and mirror-image averaging): each setting moves
the best threshold (pretrained facenet on LFW: 0.404 with YuNet alignment,
0.436 with MTCNN, 0.365-0.398 for centre crops). A threshold is used only for
the setting it was measured on; otherwise the verdict is marked uncalibrated.

Where a threshold comes from, first found wins:

1. ``--threshold T`` given for one command;
2. a calibration stored with the index (``embedkit calibrate --index``) for
   the index's model and face setting;
3. a calibration stored with a model folder (``calibrate --model``), or the
   threshold a fine-tuned model saved from its validation people, for the face
   setting it was measured on;
4. the backbone's LFW thresholds for pretrained weights, per face setting;
5. :data:`embedkit.encoder.UNCALIBRATED_THRESHOLD`, marked uncalibrated.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embedkit.errors import EmbedkitError, IndexStoreError

logger = logging.getLogger(__name__)

INFO_KEY = "calibration"


def face_setting(detector: str | None, center_crop: float = 1.0, flip: bool = False) -> str:
    """A face setting's name: ``yunet``, ``mtcnn``, ``cc0.7`` (no detection, central 70%), ``+flip``."""
    name = detector if detector else f"cc{float(center_crop):g}"
    return name + ("+flip" if flip else "")


def source_setting(source: dict) -> str:
    """The face setting of an index's stored pipeline source (its ``detector``, ``no_detect``,
    ``center_crop`` and ``flip``)."""
    return face_setting(None if source.get("no_detect") else source.get("detector", "yunet"),
                        source.get("center_crop", 1.0), bool(source.get("flip")))


def pipeline_setting(pipeline) -> str:
    """The face setting a :class:`~embedkit.pipeline.FacePipeline` embeds with."""
    extractor = pipeline.extractor
    return face_setting(extractor.detector_name, extractor.center_crop, pipeline.flip)


@dataclass
class Threshold:
    """A same-person threshold and where it came from.

    ``calibrated`` is False when no threshold was measured for this model and
    face setting (the value is then a generic default).
    """

    value: float
    calibrated: bool
    setting: str
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def model_thresholds(encoder) -> dict[str, float]:
    """The thresholds a model carries, per face setting."""
    from embedkit.backbones import PRETRAINED, get_backbone

    found: dict[str, float] = {}
    if encoder.weights_source == PRETRAINED and encoder.threshold is not None:
        spec = get_backbone(encoder.backbone)
        found.update(spec.thresholds or {})
    elif encoder.threshold is not None:
        extractor = (encoder.metadata or {}).get("faces", {}).get("extractor")
        if extractor:
            found[face_setting(extractor.get("detector"), extractor.get("center_crop", 1.0))] = encoder.threshold
    for entry in (encoder.metadata or {}).get("calibrations", {}).values():
        found[entry["setting"]] = float(entry["threshold"])
    return found


def _index_entries(store) -> dict:
    """The calibrations stored with an index, per face setting; damage is an IndexStoreError naming it."""
    value = store.get_info(INFO_KEY)
    if value is None:
        return {}
    try:
        entries = json.loads(value)
        if isinstance(entries, dict) and all(float(e["threshold"]) == float(e["threshold"])
                                             for e in entries.values()):
            return entries
    except (TypeError, ValueError, KeyError):
        pass
    raise IndexStoreError(f"{store.path}: damaged index database: {INFO_KEY} is {value[:40]!r}")


def stored_calibration(store, model_id: str, setting: str) -> dict | None:
    """The calibration stored with an index for this model and face setting, if any."""
    entry = _index_entries(store).get(setting)
    if entry and entry.get("model_id") == model_id:
        return entry
    return None


def threshold_for(pipeline, store=None, override: float | None = None) -> Threshold:
    """The threshold for ``pipeline``'s model and face setting (see the module's order)."""
    from embedkit.encoder import UNCALIBRATED_THRESHOLD

    setting = pipeline_setting(pipeline)
    encoder = pipeline.encoder
    if override is not None:
        return Threshold(float(override), True, setting, "given")
    if store is not None:
        entry = stored_calibration(store, encoder.model_id, setting)
        if entry:
            return Threshold(float(entry["threshold"]), True, setting,
                             f"calibrated on {entry.get('data', 'your folders')}")
    thresholds = model_thresholds(encoder)
    if setting in thresholds:
        return Threshold(float(thresholds[setting]), True, setting, "model")
    if thresholds:
        logger.info("model %s has thresholds for %s, not for face setting %s: verdicts are uncalibrated",
                    encoder.model_id, ", ".join(sorted(thresholds)), setting)
    return Threshold(UNCALIBRATED_THRESHOLD, False, setting, "default (uncalibrated)")


# What a stored calibration keeps of the report.
STORED_KEYS = ("threshold", "far_target", "setting", "model_id", "data", "n_people", "n_genuine", "n_impostor",
               "held_out", "date")


def _stored_entry(report: dict) -> dict:
    return {key: report[key] for key in STORED_KEYS if key in report}


def save_to_model(folder, entry: dict) -> Path:
    """Store a calibration in a model folder's config (``metadata.calibrations``, one entry per face setting)."""
    from embedkit.encoder import CONFIG_FILE

    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    config = json.loads(config_path.read_text())
    metadata = config.setdefault("metadata", {})
    metadata.setdefault("calibrations", {})[entry["setting"]] = _stored_entry(entry)
    tmp = config_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    tmp.replace(config_path)
    return config_path


# -- calibrating on the user's own people ------------------------------------------------------------

# Impostor pairs beyond this many are sampled (uniformly, seeded).
MAX_IMPOSTOR_PAIRS = 3_000_000


def threshold_at_far(impostor_scores: np.ndarray, far: float) -> float:
    """The lowest threshold at which at most a ``far`` fraction of ``impostor_scores`` is accepted
    (a score is accepted when it is at or above the threshold)."""
    # float32 throughout: embeddings' scores are float32, and the threshold must split them exactly
    scores = np.sort(np.asarray(impostor_scores, np.float32))[::-1]
    allowed = int(np.floor(far * len(scores)))
    if allowed >= len(scores):
        return float(scores[-1])
    return float(np.nextafter(scores[allowed], np.float32(np.inf)))


def _pairs(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every same-person pair and (up to :data:`MAX_IMPOSTOR_PAIRS`) different-people pairs: ``(a, b, same)``."""
    n = len(labels)
    order = np.argsort(labels, kind="stable")
    genuine_a, genuine_b = [], []
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        a, b = np.triu_indices(len(members), 1)
        genuine_a.append(members[a])
        genuine_b.append(members[b])
    ga, gb = np.concatenate(genuine_a), np.concatenate(genuine_b)
    total = n * (n - 1) // 2 - len(ga)
    if total <= MAX_IMPOSTOR_PAIRS:
        ia, ib = np.triu_indices(n, 1)
        keep = labels[ia] != labels[ib]
        ia, ib = ia[keep], ib[keep]
    else:
        rng = np.random.default_rng(seed)
        ia, ib = rng.integers(0, n, MAX_IMPOSTOR_PAIRS), rng.integers(0, n, MAX_IMPOSTOR_PAIRS)
        keep = labels[ia] != labels[ib]
        ia, ib = ia[keep], ib[keep]
    a = np.concatenate([ga, ia])
    b = np.concatenate([gb, ib])
    same = np.concatenate([np.ones(len(ga), bool), np.zeros(len(ia), bool)])
    return a, b, same


def _rates_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> dict:
    accept = scores >= threshold
    n_genuine, n_impostor = int(same.sum()), int((~same).sum())
    false_accepts = int((accept & ~same).sum())
    true_accepts = int((accept & same).sum())
    return {"n_genuine": n_genuine, "n_impostor": n_impostor, "false_accepts": false_accepts,
            "true_accepts": true_accepts,
            "far": false_accepts / n_impostor if n_impostor else None,
            "tar": true_accepts / n_genuine if n_genuine else None,
            "accuracy": float(np.mean(accept == same)) if len(same) else None}


def calibrate_vectors(vectors: np.ndarray, labels, far: float = 1e-3, folds: int = 5, seed: int = 0) -> dict:
    """Pick the threshold at ``far`` on labelled unit ``vectors``, checked on held-out people.

    People are dealt into ``folds`` identity-disjoint folds; each fold's
    pairs are scored at the threshold chosen on the other folds' people, and
    the held-out false-accept and true-accept rates are pooled over folds.
    The returned ``threshold`` is chosen on every pair.
    """
    labels = np.unique(np.asarray(labels), return_inverse=True)[1]
    n_people = int(labels.max()) + 1 if len(labels) else 0
    if n_people < 2 * folds:
        raise EmbedkitError(f"calibration needs at least {2 * folds} people (two per fold); got {n_people}")
    vectors = np.asarray(vectors, np.float32)
    a, b, same = _pairs(labels, seed)
    if not same.any():
        raise EmbedkitError("calibration needs people with at least two photos (no same-person pairs)")
    scores = np.einsum("ij,ij->i", vectors[a], vectors[b])
    fold_of_person = np.random.default_rng(seed).permutation(n_people) % folds
    fold_a, fold_b = fold_of_person[labels[a]], fold_of_person[labels[b]]
    held_scores, held_same, per_fold = [], [], []
    for k in range(folds):
        train = (fold_a != k) & (fold_b != k)
        test = (fold_a == k) & (fold_b == k)
        threshold = threshold_at_far(scores[train & ~same], far)
        held_scores.append(scores[test] >= threshold)
        held_same.append(same[test])
        per_fold.append({"fold": k, "threshold": threshold, **_rates_at(scores[test], same[test], threshold)})
    accepted, truth = np.concatenate(held_scores), np.concatenate(held_same)
    held = _rates_at(accepted.astype(np.float64), truth, 0.5)
    threshold = threshold_at_far(scores[~same], far)
    overall = _rates_at(scores, same, threshold)
    report = {
        "threshold": threshold, "far_target": far, "n_people": n_people, "n_images": int(len(labels)),
        "n_genuine": overall["n_genuine"], "n_impostor": overall["n_impostor"], "folds": folds,
        "held_out": held, "per_fold": per_fold, "all_pairs": overall,
    }
    if overall["n_impostor"] * far < 10:
        report["warning"] = (f"only {overall['n_impostor']} different-people pairs: a FAR of {far:g} rests on "
                             f"fewer than 10 false accepts; add people for a firmer threshold")
    return report


def calibrate_folder(pipeline, data, far: float = 1e-3, folds: int = 5, seed: int = 0,
                     progress=None) -> dict:
    """Embed the identity folders under ``data`` (``DATA/<person>/<photos>``, the most central face
    of each photo) and :func:`calibrate_vectors` on them; the report names the face setting and
    model it holds for."""
    from embedkit.data.folders import identity_folders
    from embedkit.evaluation.evaluate import embed_images

    images = identity_folders(data, min_images=1)
    embedded = embed_images(pipeline, images.paths, progress=progress)
    keep = [i for i, path in enumerate(images.paths) if path in embedded.vectors]
    if not keep:
        raise EmbedkitError(f"{data}: no face found in any photo")
    vectors = np.stack([embedded.vectors[images.paths[i]] for i in keep])
    report = calibrate_vectors(vectors, images.labels[keep], far, folds, seed)
    report.update({"setting": pipeline_setting(pipeline), "model_id": pipeline.encoder.model_id,
                   "data": str(data), "photos_without_face": embedded.n_missing,
                   "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return report


def save_to_index(store, entry: dict) -> None:
    """Store a calibration with an index, one entry per face setting (replacing that setting's)."""
    keep = _stored_entry(entry)
    store.begin_write()
    try:
        entries = _index_entries(store)
        entries[entry["setting"]] = keep
        store.set_info_many({INFO_KEY: json.dumps(entries)})
        store.commit()
    except BaseException:
        store.rollback()
        raise
