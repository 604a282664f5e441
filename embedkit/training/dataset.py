"""Face crops in memory for training: read and align every photo once, add augmented copies."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from embedkit.data.augment import augment_copies
from embedkit.data.folders import LabelledImages
from embedkit.data.shifts import apply_shift
from embedkit.data.splits import Split
from embedkit.errors import EmbedkitError
from embedkit.faces import FaceExtractor
from embedkit.faces.extract import default_workers
from embedkit.faces.select import subject_face

logger = logging.getLogger(__name__)

__all__ = ["FaceSet", "extract_crops", "build_face_set", "shifted_face_set"]


@dataclass
class FaceSet:
    """Every training, validation and test crop, with its person and part.

    Attributes:
        crops: ``(N, size, size, 3)`` uint8.
        labels: person label of each crop (``int64``).
        part: ``"train"``, ``"val"`` or ``"test"`` for each crop.
        source: index into the photo list the crop came from.
        augmented: True for augmented copies.
        skipped: ``{"path", "reason"}`` for photos left out (unreadable, no face).
    """

    crops: np.ndarray
    labels: np.ndarray
    part: np.ndarray
    source: np.ndarray
    augmented: np.ndarray
    skipped: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.crops)

    def indices(self, part: str) -> np.ndarray:
        return np.flatnonzero(self.part == part)

    def counts(self) -> dict:
        out = {}
        for part in ("train", "val", "test"):
            idx = self.indices(part)
            out[part] = {"people": int(np.unique(self.labels[idx]).size), "crops": int(idx.size),
                         "photos": int((~self.augmented[idx]).sum())}
        return out


def _first_face(extractor: FaceExtractor, path: str):
    """``(crop, None)`` or ``(None, reason)``; each reason is logged as one line."""
    faces, reason = extractor.try_file(path)
    if faces:
        # The labelled person is the photo's subject, the face nearest the image centre
        # (LFW photos often show others, sometimes larger): the rule of compare and evaluate too.
        return faces[subject_face(faces, path)].crop, None
    reason = reason or "no face found"
    logger.warning("skipped %s: %s", path, reason)
    return None, reason


def extract_crops(paths, extractor: FaceExtractor, workers: int | None = None,
                  progress: bool = False, skipped: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The face nearest the centre of every image, aligned: ``(crops, kept)``.

    ``kept`` are the indices of the paths that gave a face (unreadable
    images and images without a face are logged and left out, and added to
    ``skipped`` as ``{"path", "reason"}`` when a list is given).
    """
    from tqdm.auto import tqdm

    paths = list(paths)
    workers = workers or default_workers()
    crops = np.zeros((len(paths), extractor.size, extractor.size, 3), dtype=np.uint8)
    found = np.zeros(len(paths), dtype=bool)
    with ThreadPoolExecutor(workers, thread_name_prefix="embedkit-crops") as pool, \
            tqdm(total=len(paths), desc="faces", unit="img", disable=not progress, leave=False) as bar:
        for i, (crop, reason) in enumerate(pool.map(lambda p: _first_face(extractor, p), paths)):
            if crop is not None:
                crops[i] = crop
                found[i] = True
            elif skipped is not None:
                skipped.append({"path": str(paths[i]), "reason": reason})
            bar.update()
    kept = np.flatnonzero(found)
    if kept.size < len(paths):
        logger.warning("%d of %d images gave no face and are left out", len(paths) - kept.size, len(paths))
    return crops[kept], kept


def build_face_set(images: LabelledImages, split: Split, extractor: FaceExtractor, copies: int = 0,
                   seed: int = 0, progress: bool = False, workers: int | None = None) -> FaceSet:
    """Crops of the split's people, plus ``copies`` augmented copies of each photo."""
    part_of = split.part_of(images.labels)
    keep = np.flatnonzero(part_of != "")
    skipped: list[dict] = []
    crops, kept = extract_crops([images.paths[i] for i in keep], extractor, workers, progress, skipped)
    source = keep[kept]
    labels = images.labels[source]
    augmented = np.zeros(len(source), dtype=bool)
    if copies:
        extra, origin = augment_copies(crops, copies, seed)
        crops = np.concatenate([crops, extra])
        source = np.concatenate([source, source[origin]])
        labels = np.concatenate([labels, labels[origin]])
        augmented = np.concatenate([augmented, np.ones(len(origin), dtype=bool)])
    faces = FaceSet(crops, labels.astype(np.int64), part_of[source].astype(str), source, augmented, skipped)
    for part in ("train", "val", "test"):
        if np.unique(faces.labels[faces.indices(part)]).size < 2:
            raise EmbedkitError(
                f"the {part} part has fewer than 2 people with a usable face; add people or change "
                f"the split (--val-people / --test-people)"
            )
    return faces


def shifted_face_set(faces: FaceSet, shift: str, seed: int) -> FaceSet:
    """``faces`` with every crop under the domain ``shift`` (:mod:`embedkit.data.shifts`); each part
    gets its own draws (seeds ``seed + 1`` train, ``+ 2`` val, ``+ 3`` test), so a part's shifted faces
    depend only on its own crops. Rows in no part are shifted too (``seed + 4``): the crops array, and a
    frozen-feature cache keyed by it, is then the same whichever people a split uses, for a shift
    without random draws."""
    crops = faces.crops.copy()
    for offset, part in enumerate(("train", "val", "test"), start=1):
        rows = faces.indices(part)
        if rows.size:
            crops[rows] = apply_shift(shift, faces.crops[rows], seed=seed + offset)
    outside = np.flatnonzero(~np.isin(faces.part, ("train", "val", "test")))
    if outside.size:
        crops[outside] = apply_shift(shift, faces.crops[outside], seed=seed + 4)
    return replace(faces, crops=crops)
