"""Plots of evaluation results, written straight to PNG.

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly, so importing
or calling this never touches pyplot or the global backend.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from embedkit.evaluation.metrics import roc_auc

logger = logging.getLogger(__name__)

__all__ = ["plot_roc"]


def plot_roc(curves: dict, path, title: str = "ROC", min_far: float | None = None) -> Path:
    """Draw ROC curves, TAR against FAR with a log FAR axis, to a PNG file.

    ``curves`` maps a name to ``(fpr, tpr)`` (e.g. the first two values of
    :func:`embedkit.evaluation.metrics.roc`); the legend shows each curve's AUC.
    Points with FAR = 0 cannot sit on a log axis, so the axis starts at
    ``min_far`` (default: a power of ten at or below the smallest non-zero FAR,
    at least 1e-6). Returns the path written; its folder is created if needed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("plot_roc needs at least one curve")
    path = Path(path)

    if min_far is None:
        all_fpr = np.concatenate([np.asarray(fpr, dtype=float).ravel() for fpr, _ in curves.values()])
        smallest = all_fpr[all_fpr > 0].min() if np.any(all_fpr > 0) else 1e-3
        min_far = max(10.0 ** np.floor(np.log10(smallest)), 1e-6)

    fig = Figure(figsize=(6, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, (fpr, tpr) in curves.items():
        fpr = np.asarray(fpr, dtype=float)
        tpr = np.asarray(tpr, dtype=float)
        if fpr.shape != tpr.shape or fpr.ndim != 1:
            raise ValueError(f"curve {name!r}: fpr and tpr must be 1-D of equal length")
        ax.plot(np.maximum(fpr, min_far), tpr, label=f"{name} (AUC = {roc_auc(fpr, tpr):.4f})")
    grid = np.logspace(np.log10(min_far), 0, 200)
    ax.plot(grid, grid, linestyle=":", color="grey", label="chance")
    ax.set_xscale("log")
    ax.set_xlim(min_far, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("wrote ROC plot %s", path)
    return path
