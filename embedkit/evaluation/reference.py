"""Where a similarity score sits among pairs of strangers.

A reference distribution is a small table of quantiles of *impostor* scores:
the cosine similarities of pairs of photos of two different people, made
with one model and one face setting. ``fraction_below(score)`` is the share
of those pairs scoring lower, so a comparison can say "more similar than
99.2% of pairs of strangers".

Pretrained backbones ship their table as package data
(``embedkit/evaluation/references/<backbone>.json``, made by
``benchmarks/make_impostor_reference.py`` from LFW); a fine-tuned model keeps
the table of its validation impostor pairs in its metadata under
``impostor_reference``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from importlib import resources

import numpy as np

logger = logging.getLogger(__name__)

METADATA_KEY = "impostor_reference"
REFERENCE_FORMAT = "embedkit-impostor-reference/1"


def default_levels() -> np.ndarray:
    """Quantile levels: every 1% up to 90%, then ever finer towards the top tail."""
    parts = [np.arange(0, 90, 1) / 100, 0.9 + np.arange(0, 90) / 1000, 0.99 + np.arange(0, 90) / 10_000,
             0.999 + np.arange(0, 90) / 100_000, 0.9999 + np.arange(0, 100) / 1_000_000, [1.0]]
    return np.unique(np.round(np.concatenate(parts), 8))


@dataclass
class ImpostorReference:
    """Quantiles of impostor scores: ``scores[i]`` is the ``levels[i]`` quantile.

    ``n_pairs`` says how many pairs the table was made from (the resolution
    of its top tail) and ``about`` how: data set, protocol, model, face
    setting.
    """

    levels: list[float]
    scores: list[float]
    n_pairs: int
    about: dict = field(default_factory=dict)

    @classmethod
    def from_scores(cls, scores, about: dict | None = None, levels=None) -> "ImpostorReference":
        scores = np.asarray(scores, dtype=np.float64)
        scores = scores[np.isfinite(scores)]
        if scores.size < 2:
            raise ValueError("an impostor reference needs at least two scores")
        levels = default_levels() if levels is None else np.asarray(levels, dtype=np.float64)
        values = np.quantile(scores, levels)
        return cls([round(float(v), 8) for v in levels], [round(float(v), 6) for v in values], int(scores.size),
                   dict(about or {}))

    @classmethod
    def from_dict(cls, data: dict) -> "ImpostorReference":
        levels = [float(v) for v in data["levels"]]
        scores = [float(v) for v in data["scores"]]
        if len(levels) != len(scores) or len(levels) < 2 or np.any(np.diff(scores) < 0):
            raise ValueError("levels and scores must be equally long, non-decreasing lists")
        return cls(levels, scores, int(data["n_pairs"]), dict(data.get("about", {})))

    def to_dict(self) -> dict:
        return {"format": REFERENCE_FORMAT, **asdict(self)}

    def fraction_below(self, score: float) -> float:
        """Share of the reference's impostor pairs that score below ``score`` (0..1)."""
        levels, scores = np.asarray(self.levels), np.asarray(self.scores)
        if score <= scores[0]:
            return 0.0
        if score > scores[-1]:
            return 1.0
        # Ties (a flat stretch of the table) count as below up to their highest level.
        hi = int(np.searchsorted(scores, score, side="left"))
        lo = hi - 1
        span = scores[hi] - scores[lo]
        t = 1.0 if span <= 0 else (score - scores[lo]) / span
        return float(levels[lo] + t * (levels[hi] - levels[lo]))

    def score_at(self, level: float) -> float:
        """The impostor score at quantile ``level`` (0..1): the inverse of :meth:`fraction_below`."""
        return float(np.interp(float(level), self.levels, self.scores))

    def describe(self) -> str:
        """One line: where the table comes from."""
        about = self.about
        source = about.get("source", "impostor pairs")
        return f"{source}, {self.n_pairs:,} pairs of different people"


def phrase(fraction: float, n_pairs: int) -> str:
    """``fraction`` of strangers' pairs below a score, in words."""
    if fraction >= 1.0:
        return f"more similar than every one of the {n_pairs:,} pairs of strangers in the reference"
    return f"more similar than {format_percent(fraction)} of pairs of strangers"


def format_percent(fraction: float) -> str:
    """A percentage with enough digits that 99.96% is not rounded up to 100%."""
    percent = 100.0 * fraction
    if fraction <= 0.0:
        return "0%"
    rest = 100.0 - percent
    digits = 1 if rest >= 0.1 else min(6, math.ceil(-math.log10(rest)))
    text = f"{percent:.{digits}f}"
    while text.startswith("100") and digits < 6:  # never show 100% for a fraction below 1
        digits += 1
        text = f"{percent:.{digits}f}"
    return f"{text}%"


def packaged_reference(backbone: str) -> ImpostorReference | None:
    """The table shipped with embedkit for a pretrained backbone, or None."""
    try:
        text = resources.files("embedkit.evaluation").joinpath("references", f"{backbone}.json").read_text()
    except (FileNotFoundError, OSError):
        return None
    return ImpostorReference.from_dict(json.loads(text))


def reference_for(encoder, face_setting: dict | None = None) -> ImpostorReference | None:
    """The impostor reference of ``encoder``: its own (fine-tuned) or the packaged one of its weights.

    A table applies only to the model that made it: the packaged table names
    the model id it was made with, and a model with other weights (random,
    local, or fine-tuned without a stored table) has none. A table made with
    another face setting than ``face_setting`` is still returned, with
    ``about["face_setting_differs"]`` set so callers can say so.
    """
    stored = encoder.metadata.get(METADATA_KEY)
    if stored:
        try:
            reference = ImpostorReference.from_dict(stored)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("the model's impostor reference is unreadable (%s); no percentile", exc)
            return None
    else:
        try:
            reference = packaged_reference(encoder.backbone)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("the packaged impostor reference for %s is unreadable (%s)", encoder.backbone, exc)
            return None
        if reference is None or reference.about.get("model_id") != encoder.model_id:
            return None
    made_with = reference.about.get("face_setting")
    if face_setting is not None and made_with is not None:
        differs = {k: v for k, v in face_setting.items() if k in made_with and made_with[k] != v}
        if differs:
            reference.about = {**reference.about, "face_setting_differs": True}
    return reference
