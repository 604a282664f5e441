"""Content hashes of files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_files(paths) -> Iterator[tuple[str | None, str | None]]:
    """``(sha256, None)`` for each path in order, or ``(None, reason)`` if it cannot be read."""
    for path in paths:
        try:
            yield sha256_of(path), None
        except OSError as exc:
            yield None, f"cannot be read ({exc.strerror or exc})"
