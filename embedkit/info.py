"""What embedkit has on this machine: versions, where files live, each index and its settings."""

from __future__ import annotations

import json
import logging
import platform
from importlib import metadata

from embedkit import paths

logger = logging.getLogger(__name__)

PACKAGES = ("embedkit", "numpy", "opencv-python-headless", "faiss-cpu", "ai-edge-litert", "tensorflow", "keras")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def conversions() -> list[dict]:
    """Cached fast-runtime conversions in the weights cache (model folders keep theirs inside)."""
    from embedkit.runtime.cache import ENTRY_FILE, RUNTIME_DIR

    root = paths.weights_dir() / RUNTIME_DIR
    found = []
    for entry in sorted(root.glob(f"*/{ENTRY_FILE}")) if root.is_dir() else []:
        try:
            meta = json.loads(entry.read_text())
        except (OSError, ValueError):
            found.append({"path": str(entry.parent), "error": "unreadable entry"})
            continue
        found.append({"path": str(entry.parent), "backend": meta.get("backend"), "model_id": meta.get("model_id")})
    return found


def indexes() -> list[dict]:
    """Every index under embedkit's home folder, with its model, face settings and counts."""
    from embedkit.errors import EmbedkitError
    from embedkit.index import FaceIndex

    root = paths.home() / "indexes"
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        try:
            with FaceIndex.open(folder) as index:
                found.append(index.stats())
        except EmbedkitError as exc:
            found.append({"index": str(folder), "error": str(exc)})
    return found


def machine_info() -> dict:
    """Versions, folders, cached weights and conversions, and indexes."""
    from embedkit.backbones.facenet import FACENET_WEIGHTS
    from embedkit.backbones.weights import is_verified

    return {
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}},
        "home": str(paths.home()),
        "cache": str(paths.cache_dir()),
        "weights_dir": str(paths.weights_dir()),
        "default_index": str(paths.default_index_dir()),
        "weights": [{"backbone": "facenet", "path": str(FACENET_WEIGHTS.cached_path),
                     "present": is_verified(FACENET_WEIGHTS, FACENET_WEIGHTS.cached_path)}],
        "conversions": conversions(),
        "indexes": indexes(),
    }
