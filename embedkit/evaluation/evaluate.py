"""End-to-end evaluation of a face pipeline on image files.

Two protocols, shared by ``embedkit evaluate``, ``benchmarks/`` and training:

* :func:`evaluate_pairs`: a list of image pairs with known verdicts (LFW's
  ``pairs.txt`` through :func:`embedkit.evaluation.pairs.read_lfw_pairs`),
  cross-validated over the pairs' own folds;
* :func:`evaluate_folder`: an identity folder (or a one-photo-per-person set
  such as UTKFace), with seeded identity-disjoint pairs, leave-one-out
  retrieval and, given a group function, per-group error rates.

Every image is embedded once. When a photo holds several faces, the one
nearest the image centre is used (benchmark photos are centred on their
subject). A pair whose photo is unreadable or shows no face is scored -1, a
"different" verdict, so accuracy stays over all pairs, as is customary on LFW;
the count is reported (``n_missing``, ``errors``, ``pairs_with_missing``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from embedkit.evaluation.metrics import group_report, retrieval_report, verification_report

logger = logging.getLogger(__name__)

__all__ = [
    "ImageEmbeddings",
    "embed_images",
    "evaluate_pairs",
    "evaluate_folder",
    "utkface_groups",
    "GROUP_FUNCTIONS",
    "MISSING_SCORE",
]

# Score of a pair with an image that gave no face: below any cosine similarity.
MISSING_SCORE = -1.0
# Errors listed in a report (all are counted).
MAX_LISTED_ERRORS = 20


@dataclass
class ImageEmbeddings:
    """One embedding per image (its most central face), or why there is none.

    Attributes:
        vectors: path -> unit-length embedding, for images with a face.
        crops: path -> that face's aligned crop (only if asked for).
        no_face: readable images in which no face was found.
        errors: ``{"path", "reason"}`` for images that could not be read.
        seconds: wall time of the embedding run.
    """

    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    crops: dict[str, np.ndarray] = field(default_factory=dict)
    no_face: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_images(self) -> int:
        return len(self.vectors) + len(self.no_face) + len(self.errors)

    @property
    def n_missing(self) -> int:
        return len(self.no_face) + len(self.errors)

    def summary(self) -> dict:
        return {
            "n_images": self.n_images,
            "n_missing": self.n_missing,
            "n_no_face": len(self.no_face),
            "n_errors": len(self.errors),
            "errors": self.errors[:MAX_LISTED_ERRORS],
            "no_face": self.no_face[:MAX_LISTED_ERRORS],
            "embed_seconds": round(self.seconds, 2),
            "images_per_second": round(self.n_images / self.seconds, 2) if self.seconds > 0 else None,
        }


def _image_size(path: str) -> tuple[int, int] | None:
    """Upright ``(width, height)`` from the file header, without decoding."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Exception:  # the pipeline already read it; a header quirk only loses the centre rule
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def central_face(faces: list, path: str) -> int:
    """Index of the face whose box centre is nearest the image centre."""
    if len(faces) == 1:
        return 0
    size = _image_size(path)
    if size is None:
        return 0  # largest first
    cx, cy = size[0] / 2, size[1] / 2
    distances = [(f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2 for f in faces]
    return int(np.argmin(distances))


def embed_images(pipeline, paths: Iterable, progress: Callable[[str], None] | None = None,
                 keep_crops: bool = False) -> ImageEmbeddings:
    """Embed each path once (duplicates are embedded once), keeping its central face."""
    unique = list(dict.fromkeys(str(p) for p in paths))
    out = ImageEmbeddings()
    if hasattr(pipeline, "prepare"):
        pipeline.prepare(len(unique))
    started = time.perf_counter()
    for result in pipeline.embed_files(unique):
        if result.error:
            out.errors.append({"path": result.path, "reason": result.error})
        elif not result.faces:
            out.no_face.append(result.path)
        else:
            k = central_face(result.faces, result.path)
            out.vectors[result.path] = result.embeddings[k]
            if keep_crops:
                out.crops[result.path] = result.faces[k].crop
        if progress:
            progress(result.path)
    out.seconds = time.perf_counter() - started
    if out.n_missing:
        logger.info("%d of %d images gave no face (%d unreadable)", out.n_missing, out.n_images, len(out.errors))
    return out


def _pair_scores(vectors: dict[str, np.ndarray], paths_a: list[str], paths_b: list[str]) -> tuple[np.ndarray, int]:
    scores = np.full(len(paths_a), MISSING_SCORE, dtype=np.float64)
    missing = 0
    for k, (a, b) in enumerate(zip(paths_a, paths_b)):
        va, vb = vectors.get(a), vectors.get(b)
        if va is None or vb is None:
            missing += 1
        else:
            scores[k] = float(np.dot(va, vb))
    return scores, missing


def _cv_folds(fold: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The pairs' own folds if there are two or more, else None (10 splits stratified by same/different)."""
    if np.unique(fold).size >= 2:
        return fold, "given"
    logger.info("pairs come from one fold; cross-validating over 10 stratified splits instead")
    return None, "stratified"


def evaluate_pairs(pipeline, pairs, images_root, folds: int | None = None,
                   progress: Callable[[str], None] | None = None, keep_scores: bool = False) -> dict:
    """Verification metrics of ``pipeline`` on LFW-style pairs.

    Args:
        pipeline: a :class:`embedkit.pipeline.FacePipeline`.
        pairs: :class:`embedkit.evaluation.pairs.LfwPair` objects (paths
            relative to ``images_root``).
        images_root: the folder the pair paths are relative to.
        folds: use only the pairs of the first ``folds`` folds (a quick check);
            None: all.
        progress: called with each image path once it is embedded.
        keep_scores: also return ``scores``, ``same`` and ``folds`` arrays
            (for ROC plots; not JSON-ready).

    Returns :func:`embedkit.evaluation.metrics.verification_report`'s dict
    (accuracy over the pairs' folds, threshold chosen on the other folds),
    plus ``fold_source``, ``pairs_with_missing`` and the image summary of
    :class:`ImageEmbeddings` (``n_images``, ``n_missing``, ``errors``, speed).
    """
    pairs = list(pairs)
    if folds is not None:
        if folds < 1:
            raise ValueError(f"folds must be >= 1, got {folds}")
        kept = sorted({p.fold for p in pairs})[:folds]
        pairs = [p for p in pairs if p.fold in kept]
    if not pairs:
        raise ValueError("no pairs to evaluate")
    root = Path(images_root)
    paths_a = [str(root / p.path_a) for p in pairs]
    paths_b = [str(root / p.path_b) for p in pairs]
    embedded = embed_images(pipeline, paths_a + paths_b, progress)

    scores, missing = _pair_scores(embedded.vectors, paths_a, paths_b)
    same = np.array([p.same for p in pairs], dtype=bool)
    pair_folds, fold_source = _cv_folds(np.array([p.fold for p in pairs]))
    report = verification_report(scores, same, folds=pair_folds)
    report.update(fold_source=fold_source, pairs_with_missing=missing, **embedded.summary())
    if keep_scores:
        report.update(scores=scores, same=same, folds=pair_folds)
    return report


# -- identity folders --------------------------------------------------------------------

UTKFACE_GENDERS = ("male", "female")
UTKFACE_RACES = ("white", "black", "asian", "indian", "other")


def utkface_groups(path: str) -> dict[str, str] | None:
    """``{"gender", "race"}`` from a UTKFace name ``age_gender_race_date...``, or None.

    Gender 0 = male, 1 = female; race 0..4 = white, black, asian, indian, other.
    """
    fields = Path(path).name.split("_")
    try:
        gender, race = int(fields[1]), int(fields[2])
        return {"gender": UTKFACE_GENDERS[gender], "race": UTKFACE_RACES[race]}
    except (IndexError, ValueError):
        return None


GROUP_FUNCTIONS = {"utkface": utkface_groups}


def _folder_items(pipeline, images, copies: int, seed: int, progress):
    """Embeddings, labels and paths of the images with a face (plus augmented copies)."""
    embedded = embed_images(pipeline, images.paths, progress, keep_crops=copies > 0)
    keep = [i for i, p in enumerate(images.paths) if p in embedded.vectors]
    paths = [images.paths[i] for i in keep]
    labels = images.labels[keep]
    vectors = np.stack([embedded.vectors[p] for p in paths]) if paths else np.zeros((0, 1), np.float32)
    if copies > 0 and paths:
        from embedkit.data.augment import augment_copies

        augmented, source = augment_copies(np.stack([embedded.crops[p] for p in paths]), copies, seed)
        copy_vectors = pipeline.encoder.encode(augmented, pipeline.batch_size)
        vectors = np.concatenate([vectors, copy_vectors])
        labels = np.concatenate([labels, labels[source]])
        paths = paths + [paths[i] for i in source]
    return vectors, labels, paths, embedded


def evaluate_folder(pipeline, root, n_pairs: int = 3000, seed: int = 0, ks=(1, 5, 10),
                    group_fn: Callable[[str], dict | None] | None = None, one_photo: bool = False,
                    copies: int = 4, threshold: float | None = None, n_folds: int = 10,
                    progress: Callable[[str], None] | None = None, keep_scores: bool = False) -> dict:
    """Verification, retrieval and per-group metrics on labelled photos.

    Args:
        root: identity folders ``root/<person>/<images>``, or with
            ``one_photo=True`` a set where every image is a different person
            (UTKFace); then each face gets ``copies`` seeded augmented copies,
            which are its "same person" matches.
        n_pairs: verification pairs to sample (half same where possible), in
            ``n_folds`` identity-disjoint folds, with ``seed``.
        ks: the k of the retrieval ``recall@k`` figures (each face queries all
            others).
        group_fn: maps a path to ``{attribute: group}`` (e.g.
            :func:`utkface_groups`); gives FMR/FNMR per group of each attribute.
        threshold: for the group breakdown; default the best single
            threshold on these pairs.

    Images without a face take no part (their count is reported).
    Returns ``{"verification", "retrieval", "groups" (or None), "images"}``.
    """
    from embedkit.data.folders import load_labelled_images
    from embedkit.evaluation.pairs import sample_identity_pairs

    images = load_labelled_images(root, one_photo=one_photo)
    copies = copies if one_photo else 0
    vectors, labels, paths, embedded = _folder_items(pipeline, images, copies, seed, progress)
    if len(paths) < 2:
        raise ValueError(f"{root}: fewer than two faces found; nothing to evaluate")

    idx_a, idx_b, same, fold = sample_identity_pairs(labels, n_pairs, seed, n_folds=n_folds)
    scores = np.einsum("ij,ij->i", vectors[idx_a], vectors[idx_b]).astype(np.float64)
    verification = verification_report(scores, same, folds=fold if np.unique(fold).size >= 2 else None,
                                       n_folds=n_folds, seed=seed)
    verification["fold_source"] = "identity-disjoint"
    retrieval = retrieval_report(vectors, labels, ks)

    groups = None
    if group_fn is not None:
        at = verification["threshold"] if threshold is None else float(threshold)
        groups = _group_breakdown(group_fn, paths, idx_a, idx_b, scores, same, at)

    return {
        "verification": verification,
        "retrieval": retrieval,
        "groups": groups,
        "images": {**embedded.summary(), "n_people": images.n_people, "layout": images.layout,
                   "augmented_copies": copies, "n_items": len(paths)},
        **({"scores": scores, "same": same} if keep_scores else {}),
    }


def _group_breakdown(group_fn, paths, idx_a, idx_b, scores, same, threshold: float) -> dict:
    """One :func:`group_report` per attribute that ``group_fn`` names."""
    item_groups = [group_fn(p) or {} for p in paths]
    attributes = sorted({name for g in item_groups for name in g})
    if not attributes:
        logger.warning("the group function found no groups in these file names")
    breakdown = {}
    for attribute in attributes:
        values = np.array([g.get(attribute, "unknown") for g in item_groups])
        breakdown[attribute] = group_report(scores, same, values[idx_a], values[idx_b], threshold)
    return breakdown
