"""Indexing on a Ray cluster: workers read, hash, detect, align and embed;
the one writer (this process) commits to the index as a local run does.

Only this package imports Ray (the optional extra ``embedkit[ray]``).
"""

from embedkit.distributed.ray_embed import RAY_MISSING, RayEmbedder

__all__ = ["RAY_MISSING", "RayEmbedder"]
