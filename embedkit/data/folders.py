"""Labelled face photos on disk: identity folders and one-photo-per-person sets.

Two layouts are understood:

* identity folders, ``DATA/<person>/<images>`` (AT&T, LFW, a user's own):
  every direct subfolder of ``DATA`` is one person, and every image anywhere
  below it is a photo of that person;
* one photo per person (UTKFace): every image anywhere below ``DATA`` is a
  different person, so "same" pairs can only come from augmented copies.

Both give a :class:`LabelledImages`: paths, integer labels and the name of
each label, ready for pair sampling on integer labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit.errors import EmbedkitError
from embedkit.faces.io import is_image_path

logger = logging.getLogger(__name__)

__all__ = ["LabelledImages", "identity_folders", "one_photo_per_person", "load_labelled_images", "drop_duplicates"]


@dataclass
class LabelledImages:
    """Image paths with integer identity labels.

    Attributes:
        paths: image files, as strings.
        labels: ``int64`` array, one label per path; ``names[labels[i]]`` is
            the person in ``paths[i]``.
        names: the person behind each label (folder name, or the file's path
            relative to the data folder for one-photo-per-person sets).
        root: the data folder they came from.
    """

    paths: list[str]
    labels: np.ndarray
    names: list[str]
    root: str = ""
    layout: str = "folders"
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (len(self.paths),):
            raise ValueError(f"{len(self.paths)} paths but labels of shape {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def n_people(self) -> int:
        return len(self.names)

    def subset(self, indices) -> "LabelledImages":
        """The images at ``indices``, labels and names kept as they are."""
        indices = np.asarray(indices, dtype=np.int64)
        return LabelledImages([self.paths[i] for i in indices], self.labels[indices], list(self.names),
                              self.root, self.layout)

    def people(self, labels) -> "LabelledImages":
        """Every image of the given people (labels), in their original order."""
        keep = np.flatnonzero(np.isin(self.labels, np.asarray(list(labels), dtype=np.int64)))
        return self.subset(keep)


def _images_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_path(p) and not p.name.startswith("."))


def _check_root(root) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise EmbedkitError(f"{root}: data folder not found")
    return root


def identity_folders(root, min_images: int = 1, max_images: int | None = None) -> LabelledImages:
    """One person per subfolder of ``root`` (``root/<person>/<images>``).

    People with fewer than ``min_images`` photos are left out; with
    ``max_images`` only each person's first photos (sorted by path) are kept.
    Labels follow the sorted folder names.
    """
    root = _check_root(root)
    paths, labels, names, skipped = [], [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = _images_below(folder)
        if len(images) < max(min_images, 1):
            skipped.append(folder.name)
            continue
        if max_images:
            images = images[:max_images]
        label = len(names)
        names.append(folder.name)
        paths.extend(str(p) for p in images)
        labels.extend([label] * len(images))
    if not names:
        raise EmbedkitError(
            f"{root}: no identity folders with at least {max(min_images, 1)} image(s); expected "
            f"{root}/<person>/<images> (or use the one-photo-per-person layout)"
        )
    if skipped:
        logger.info("%d folders under %s have fewer than %d images; skipped", len(skipped), root, min_images)
    loose = [p for p in root.iterdir() if p.is_file() and is_image_path(p)]
    if loose:
        logger.warning("%d images directly in %s belong to no identity folder; ignored", len(loose), root)
    return LabelledImages(paths, np.asarray(labels), names, str(root), "folders", skipped)


def one_photo_per_person(root) -> LabelledImages:
    """Every image anywhere below ``root`` is a different person (UTKFace)."""
    root = _check_root(root)
    images = _images_below(root)
    if not images:
        raise EmbedkitError(f"{root}: no images found")
    names = [str(p.relative_to(root)) for p in images]
    return LabelledImages([str(p) for p in images], np.arange(len(images)), names, str(root), "photos")


def load_labelled_images(root, one_photo: bool = False, min_images: int = 1,
                         max_images: int | None = None) -> LabelledImages:
    """Identity folders, or one photo per person with ``one_photo=True``."""
    if one_photo:
        return one_photo_per_person(root)
    return identity_folders(root, min_images=min_images, max_images=max_images)


def drop_duplicates(images: LabelledImages) -> tuple[LabelledImages, list[dict]]:
    """The images without byte-identical copies (the first path in order is kept).

    A copy under another name would otherwise land in another part of a split
    (UTKFace has byte-identical photos under different names, each taken for a
    different person) or make a "same" pair of one photo. Returns the kept
    images and ``{"path", "same_as"}`` for each dropped copy; unreadable files
    are kept (reading them reports the reason later).
    """
    from embedkit.hashing import sha256_of

    first: dict[str, str] = {}
    keep, dropped = [], []
    for i, path in enumerate(images.paths):
        try:
            digest = sha256_of(path)
        except OSError:
            keep.append(i)
            continue
        if digest in first:
            dropped.append({"path": path, "same_as": first[digest]})
        else:
            first[digest] = path
            keep.append(i)
    if dropped:
        logger.warning("%d images are byte-identical copies of others and are left out (first: %s = %s)",
                       len(dropped), dropped[0]["path"], dropped[0]["same_as"])
        images = images.subset(keep)
    return images, dropped
