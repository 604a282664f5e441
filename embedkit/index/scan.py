"""Walking a photo folder: which files are images, and their content hashes."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from embedkit.faces.io import is_image_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanProblem:
    path: str
    reason: str


def walk_images(root: Path, problems: list[ScanProblem]) -> Iterator[Path]:
    """Image files under ``root``, sorted, recursively, never following a
    directory link (so a symlink loop cannot trap the walk). Folders that
    cannot be listed are added to ``problems``.
    """

    def on_error(exc: OSError) -> None:
        problems.append(ScanProblem(str(exc.filename), f"cannot list folder ({exc.strerror})"))

    for folder, dirs, files in os.walk(root, onerror=on_error, followlinks=False):
        dirs.sort()
        base = Path(folder)
        for link in [d for d in dirs if (base / d).is_symlink()]:
            logger.debug("not following folder link %s", base / link)
        for name in sorted(files):
            path = base / name
            if not is_image_path(path):
                continue
            if path.is_symlink() and not path.exists():
                problems.append(ScanProblem(str(path), "broken or looping symbolic link"))
                continue
            yield path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def label_for(path: Path, root: Path) -> str | None:
    """The name of the folder holding ``path``, or None for files directly in ``root``."""
    parent = path.parent
    return None if parent == root else parent.name
