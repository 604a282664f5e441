"""Verification and retrieval metrics, evaluation pairs and plots.

Shared by training, the CLI and ``benchmarks/``. Conventions: scores are
similarities (higher = more alike), a pair is predicted "same" when
``score >= threshold``, and ``same`` is True for the same person.
"""

from embedkit.evaluation.metrics import (
    best_threshold,
    group_report,
    mcnemar,
    retrieval_report,
    roc,
    roc_auc,
    verification_report,
)
from embedkit.evaluation.pairs import LfwPair, read_lfw_pairs, sample_identity_pairs

__all__ = [
    "LfwPair",
    "best_threshold",
    "group_report",
    "mcnemar",
    "read_lfw_pairs",
    "retrieval_report",
    "roc",
    "roc_auc",
    "sample_identity_pairs",
    "verification_report",
]
