"""Face indexes: FAISS vectors plus SQLite metadata, updated incrementally."""

from embedkit.index.face_index import FaceIndex, IndexReport
from embedkit.index.vectors import DEFAULT_FACTORY

__all__ = ["DEFAULT_FACTORY", "FaceIndex", "IndexReport"]
