"""The conversion cache: one converted model per (weights, config), never stale.

An entry is a folder named by its key: the SHA-256 of the weights file(s)
the encoder was built from plus the config that shapes the network
(backbone, preprocessing, head). A changed weights file or config gives a
new key, so a changed model can never reuse an old conversion. Each entry
holds the converted model and ``entry.json``, which records the model id
TensorFlow computed from the loaded tensors when converting: a fast-path
load takes the model id from there, never from a model folder's config.

Entries live beside the weights: ``<weights cache>/runtime/<key>/`` for
pretrained backbones, ``<model folder>/runtime/<key>/`` for a fine-tuned
model folder (the weights cache when that folder is not writable).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from embedkit import paths

logger = logging.getLogger(__name__)

CACHE_FORMAT = "embedkit-runtime/1"
ENTRY_FILE = "entry.json"
RUNTIME_DIR = "runtime"


def cache_key(weights_sha256: list[str], config: dict, backend: str) -> str:
    """Hex key of a conversion: the weights' hashes, the shaping config, the back-end."""
    payload = {"format": CACHE_FORMAT, "backend": backend, "weights": list(weights_sha256), "config": config}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class Entry:
    """A cached conversion: ``folder/model_file`` plus what ``entry.json`` says."""

    folder: Path
    meta: dict

    @property
    def model_path(self) -> Path:
        return self.folder / self.meta["model_file"]

    @property
    def model_id(self) -> str:
        return self.meta["model_id"]


def candidate_roots(beside: Path | None) -> list[Path]:
    """Where entries may live, in lookup order: beside the weights, then the weights cache."""
    roots = [] if beside is None else [Path(beside) / RUNTIME_DIR]
    fallback = paths.weights_dir() / RUNTIME_DIR
    if fallback not in roots:
        roots.append(fallback)
    return roots


def find_entry(key: str, roots: list[Path]) -> Entry | None:
    """The complete entry for ``key``, or None (an unreadable entry counts as missing)."""
    for root in roots:
        folder = root / key
        try:
            meta = json.loads((folder / ENTRY_FILE).read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            logger.warning("%s: unreadable conversion entry (%s); converting again", folder, exc)
            continue
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != key or "model_id" not in meta:
            logger.warning("%s: conversion entry does not match its key; converting again", folder)
            continue
        entry = Entry(folder, meta)
        if entry.model_path.is_file():
            return entry
        logger.warning("%s: conversion entry lacks %s; converting again", folder, meta.get("model_file"))
    return None


def write_entry(key: str, roots: list[Path], model_bytes: bytes, model_file: str, meta: dict) -> Entry | None:
    """Store a conversion atomically in the first writable root; None if none is writable."""
    meta = {**meta, "format": CACHE_FORMAT, "key": key, "model_file": model_file}
    for root in roots:
        target = root / key
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=".convert-"))
        except OSError as exc:
            logger.info("cannot cache the conversion in %s (%s)", root, exc.strerror or exc)
            continue
        try:
            (tmp / model_file).write_bytes(model_bytes)
            (tmp / ENTRY_FILE).write_text(json.dumps(meta, indent=2))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the weights cache is not
            if target.exists() and find_entry(key, [root]) is None:
                shutil.rmtree(target)  # a damaged entry
            os.replace(tmp, target)
        except OSError as exc:
            if find_entry(key, [root]) is None:  # else another process stored the same entry first
                logger.info("cannot cache the conversion in %s (%s)", root, exc.strerror or exc)
                continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Entry(target, meta)
    return None
