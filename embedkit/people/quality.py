"""Face quality: which stored faces are good enough to cluster and to match with ``--all``.

A face smaller than ``min_size`` pixels (its box's shorter side) or found with a
detector score below ``min_score`` is kept in the index but marked: it is left
out of clustering and of ``query --all`` unless asked for. The settings are
stored with the index beside its other face settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from embedkit.errors import IndexStoreError

INFO_KEY = "face_quality"


@dataclass(frozen=True)
class Quality:
    """Minimum face size (pixels, shorter side of the box) and detector score."""

    min_size: float = 32.0
    min_score: float = 0.8

    def good(self, width: float, height: float, score: float) -> bool:
        return min(width, height) >= self.min_size and score >= self.min_score

    def reason(self, width: float, height: float, score: float) -> str | None:
        """Why a face falls below the settings (None if it does not)."""
        if min(width, height) < self.min_size:
            return f"smaller than {self.min_size:g} px"
        if score < self.min_score:
            return f"detector score below {self.min_score:g}"
        return None

    def to_dict(self) -> dict:
        return asdict(self)


def get_quality(store) -> Quality:
    """The quality settings stored with an index's metadata store (defaults if none)."""
    value = store.get_info(INFO_KEY)
    if value is None:
        return Quality()
    try:
        stored = json.loads(value)
        return Quality(float(stored["min_size"]), float(stored["min_score"]))
    except (TypeError, ValueError, KeyError):
        raise IndexStoreError(f"{store.path}: damaged index database: {INFO_KEY} is {value[:40]!r}") from None


def set_quality(store, min_size: float | None = None, min_score: float | None = None) -> Quality:
    """Store new quality settings with an index (unset ones keep their current value)."""
    store.begin_write()
    try:
        current = get_quality(store)
        quality = Quality(current.min_size if min_size is None else float(min_size),
                          current.min_score if min_score is None else float(min_score))
        store.set_info_many({INFO_KEY: json.dumps(quality.to_dict())})
        store.commit()
    except BaseException:
        store.rollback()
        raise
    return quality
