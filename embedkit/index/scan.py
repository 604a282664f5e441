"""Walking a photo folder: which files are images, and their content hashes."""

from __future__ import annotations

import logging
import os
import stat
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
            reason = _not_a_file(path)
            if reason:
                problems.append(ScanProblem(str(path), reason))
                continue
            yield path


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` is no regular file to read (None if it is one).

    A named pipe or device must never be opened: reading it could block forever.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if path.is_symlink():
            return "broken or looping symbolic link"
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe, device or socket)"
    return None


def label_for(path: Path, root: Path) -> str | None:
    """The name of the folder holding ``path``, or None for files directly in ``root``."""
    parent = path.parent
    return None if parent == root else parent.name
