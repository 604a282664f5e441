"""End-to-end evaluation of a face pipeline on image files.

Two protocols, shared by ``embedkit evaluate``, ``benchmarks/`` and training:

* :func:`evaluate_pairs`: a list of image pairs with known verdicts (LFW's
  ``pairs.txt`` through :func:`embedkit.evaluation.pairs.read_lfw_pairs`),
  cross-validated over the pairs' own folds;
* :func:`evaluate_folder`: an identity folder (or a one-photo-per-person set
  such as UTKFace), with seeded identity-disjoint pairs, leave-one-out
  retrieval and, given a group function, per-group error rates.

Every image is embedded once. When a photo holds several faces, its subject
is used: the face nearest the image centre (:mod:`embedkit.faces.select`, the
rule of ``compare`` and ``finetune`` too). A pair whose photo is unreadable or shows no face is scored -1, a
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

from embedkit.errors import EmbedkitError
from embedkit.evaluation.metrics import group_report, retrieval_report, verification_report
from embedkit.faces.select import subject_face

logger = logging.getLogger(__name__)

__all__ = [
    "ImageEmbeddings",
    "embed_images",
    "evaluate_pairs",
    "evaluate_folder",
    "utkface_groups",
    "trained_people_here",
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
            k = subject_face(result.faces, result.path)
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
    plus ``fold_source``, ``folds_share_people`` (a person, the first folder
    of a pair's paths, is in pairs of two folds: the folds are then not
    identity-disjoint), ``pairs_with_missing`` and the image summary of
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
    # A pair's people are the first folder of its paths (LFW: Name/Name_0001.jpg).
    shared = pair_folds is not None and _folds_share_people(
        [Path(p.path_a).parts[0] for p in pairs], [Path(p.path_b).parts[0] for p in pairs], pair_folds.tolist())
    report.update(fold_source=fold_source, folds_share_people=bool(shared), pairs_with_missing=missing,
                  **embedded.summary())
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
    """Embeddings, labels, paths and a has-a-face mask of every image (plus augmented copies of
    those with a face); an image without a face keeps a zero vector and ``found`` False."""
    if copies > 0 and pipeline.extractor.extra_framings:
        raise EmbedkitError(f"augmented copies are made of one crop per face; {pipeline.encoder.backbone} "
                            "takes several framings: evaluate it without --augment-copies")
    embedded = embed_images(pipeline, images.paths, progress, keep_crops=copies > 0)
    paths = list(images.paths)
    labels = images.labels
    found = np.array([p in embedded.vectors for p in paths], dtype=bool)
    dim = pipeline.encoder.embedding_dim
    vectors = np.stack([embedded.vectors.get(p, np.zeros(dim, np.float32)) for p in paths]) if paths \
        else np.zeros((0, dim), np.float32)
    with_face = np.flatnonzero(found)
    if copies > 0 and with_face.size:
        from embedkit.data.augment import augment_copies

        augmented, source = augment_copies(np.stack([embedded.crops[paths[i]] for i in with_face]), copies, seed)
        source = with_face[source]
        copy_vectors = pipeline.encoder.encode(augmented, pipeline.batch_size)
        vectors = np.concatenate([vectors, copy_vectors])
        labels = np.concatenate([labels, labels[source]])
        paths = paths + [paths[i] for i in source]
        found = np.concatenate([found, np.ones(len(source), dtype=bool)])
    return vectors, labels, paths, found, embedded


def _only_people(images, people: Iterable[str], root):
    """The images of the named people; an error if none of them is in ``root``."""
    wanted = set(people)
    keep = [label for label, name in enumerate(images.names) if name in wanted]
    if len(keep) < 2:
        raise ValueError(f"{root}: {len(keep)} of the {len(wanted)} people asked for are here; need at least 2")
    return images.people(keep)


def trained_people_here(metadata: dict, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """For a fine-tuned model's ``metadata`` and the people (folder names) of a data folder:
    ``(trained, test)``, the people here the model trained or validated on, and its test people here."""
    split_names = (metadata or {}).get("split", {}).get("names", {})
    here = set(names)
    trained = sorted(here & (set(split_names.get("train", [])) | set(split_names.get("val", []))))
    return trained, sorted(here & set(split_names.get("test", [])))


def _folds_share_people(people_a, people_b, fold) -> bool:
    """Whether some person is in pairs of two different folds."""
    fold_of: dict = {}
    for a, b, f in zip(list(people_a), list(people_b), list(fold)):
        for person in (a, b):
            if fold_of.setdefault(person, f) != f:
                return True
    return False


def _fold_source(labels, idx_a, idx_b, fold) -> str:
    """``identity-disjoint`` when no person is in pairs of two folds, else ``shared-people``."""
    shared = _folds_share_people(labels[idx_a].tolist(), labels[idx_b].tolist(), fold.tolist())
    return "shared-people" if shared else "identity-disjoint"


def evaluate_folder(pipeline, root, n_pairs: int = 3000, seed: int = 0, ks=(1, 5, 10),
                    group_fn: Callable[[str], dict | None] | None = None, one_photo: bool = False,
                    copies: int = 4, threshold: float | None = None, n_folds: int = 10,
                    progress: Callable[[str], None] | None = None, keep_scores: bool = False,
                    people: Iterable[str] | None = None) -> dict:
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
        people: score only these people (folder names; e.g. a fine-tuned
            model's test people); None: everyone.

    Photos without a face (or unreadable) count as failures, as in
    :func:`evaluate_pairs`: pairs are drawn over every photo, and a pair with
    such a photo is scored ``MISSING_SCORE`` (a "different" verdict: wrong
    for a same pair); they are no retrieval queries. Their count is reported.
    ``verification["fold_source"]`` says whether the folds are
    identity-disjoint or, with too few people, share people.
    Returns ``{"verification", "retrieval", "groups" (or None), "images"}``.
    """
    from embedkit.data.folders import load_labelled_images
    from embedkit.evaluation.pairs import sample_identity_pairs

    images = load_labelled_images(root, one_photo=one_photo)
    if people is not None:
        images = _only_people(images, people, root)
    copies = copies if one_photo else 0
    vectors, labels, paths, found, embedded = _folder_items(pipeline, images, copies, seed, progress)
    if int(found.sum()) < 2:
        raise ValueError(f"{root}: fewer than two faces found; nothing to evaluate")

    idx_a, idx_b, same, fold = sample_identity_pairs(labels, n_pairs, seed, n_folds=n_folds)
    scores = np.einsum("ij,ij->i", vectors[idx_a], vectors[idx_b]).astype(np.float64)
    missing = ~(found[idx_a] & found[idx_b])
    scores[missing] = MISSING_SCORE
    verification = verification_report(scores, same, folds=fold if np.unique(fold).size >= 2 else None,
                                       n_folds=n_folds, seed=seed)
    verification["fold_source"] = _fold_source(labels, idx_a, idx_b, fold)
    verification["pairs_with_missing"] = int(missing.sum())
    retrieval = retrieval_report(vectors[found], labels[found], ks)

    groups = None
    if group_fn is not None:
        at = verification["threshold"] if threshold is None else float(threshold)
        groups = _group_breakdown(group_fn, paths, idx_a, idx_b, scores, same, at)

    return {
        "verification": verification,
        "retrieval": retrieval,
        "groups": groups,
        "images": {**embedded.summary(), "n_people": int(np.unique(images.labels).size), "layout": images.layout,
                   "augmented_copies": copies, "n_items": len(paths), "n_items_with_face": int(found.sum())},
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
