"""The FAISS half of an index: building, saving and loading the vector search
structure. Vectors are unit length and compared by inner product (cosine)."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

DEFAULT_FACTORY = "IDMap,Flat"
VECTOR_FILE = re.compile(r"^vectors-(\d+)\.faiss$")


def normalise_factory(factory: str, dim: int) -> str:
    """Factory strings get an ``IDMap`` so vectors keep their face ids, unless
    the index keeps ids itself (IVF: the ids live in its inverted lists, which
    can then stay on disk, see :func:`load_index`)."""
    factory = factory.strip()
    return factory if factory.startswith("IDMap") or _keeps_ids(factory, dim) else f"IDMap2,{factory}"


def _keeps_ids(factory: str, dim: int) -> bool:
    """True for an IVF index, possibly behind a transform (``OPQ16,IVF4096,PQ16``), that stores ids."""
    import faiss

    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError:
        return False
    top = faiss.downcast_index(index)
    inner = faiss.downcast_index(top.index) if isinstance(top, faiss.IndexPreTransform) else top
    return isinstance(inner, faiss.IndexIVF)


def lossy(factory: str) -> bool:
    """True if the index keeps compressed codes (PQ, SQ, ...) rather than the vectors: its scores are approximate."""
    return re.search(r"(^|,|_)(PQ|SQ|RQ|LSQ|PRQ|PLSQ|LSH)", factory) is not None


def build_index(factory: str, dim: int, ids: np.ndarray, vectors: np.ndarray, search_params: str = ""):
    """A FAISS index of ``vectors`` under ``ids`` (training it first if the factory needs it)."""
    import faiss

    try:
        index = faiss.index_factory(dim, normalise_factory(factory, dim), faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise EmbedkitError(f"invalid FAISS factory string {factory!r}: {str(exc).splitlines()[-1]}") from None
    if not index.is_trained:
        if len(vectors) == 0:
            return index
        try:
            index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        except RuntimeError as exc:
            raise EmbedkitError(
                f"FAISS index {factory!r} cannot be trained on {len(vectors)} faces "
                f"({str(exc).splitlines()[-1]}); use a smaller configuration or IDMap,Flat"
            ) from None
    if len(vectors):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, np.int64))
    apply_search_params(index, search_params)
    return index


def exact_index(dim: int, ids: np.ndarray, vectors: np.ndarray):
    """A brute-force inner-product index (always correct, needs no training)."""
    return build_index(DEFAULT_FACTORY, dim, ids, vectors)


def apply_search_params(index, search_params: str) -> None:
    """Set e.g. ``nprobe=16`` or ``efSearch=128`` on the index inside the IDMap."""
    if not search_params:
        return
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    try:
        faiss.ParameterSpace().set_index_parameters(inner, search_params)
    except RuntimeError as exc:
        raise EmbedkitError(f"invalid FAISS search parameters {search_params!r}: {str(exc).splitlines()[-1]}") from None


# Below this many queries FAISS searches on one thread: OpenMP's hand-offs
# between threads cost far more than they save for a single query.
SINGLE_THREAD_QUERIES = 16


def search(index, queries: np.ndarray, k: int):
    """``index.search``, on one thread for a few queries (restoring the thread count)."""
    import faiss

    if len(queries) >= SINGLE_THREAD_QUERIES:
        return index.search(queries, k)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, k)
    finally:
        faiss.omp_set_num_threads(threads)


def index_ids(index) -> np.ndarray:
    """The ids stored in an IDMap or IVF index."""
    import faiss

    if hasattr(index, "id_map"):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    invlists = faiss.extract_index_ivf(index).invlists
    parts = [faiss.rev_swig_ptr(invlists.get_ids(n), invlists.list_size(n)).copy()
             for n in range(invlists.nlist) if invlists.list_size(n)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def vector_path(folder: Path, generation: int) -> Path:
    return folder / f"vectors-{generation}.faiss"


def save_index(index, folder: Path, generation: int) -> Path:
    """Write atomically as ``vectors-<generation>.faiss``, then drop older files."""
    import faiss

    target = vector_path(folder, generation)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".vectors-", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; readers may be other users
        faiss.write_index(index, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for old in folder.iterdir():
        match = VECTOR_FILE.match(old.name)
        if match and int(match.group(1)) != generation:
            try:
                old.unlink()
            except OSError:
                pass
    return target


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def load_index(folder: Path, generation: int, search_params: str = "", mapped: bool = False):
    """The saved index for ``generation``, or None if there is none (or it is unreadable).

    ``mapped``: for searching only. An IVF index's inverted lists (its codes and
    ids, nearly all of its size) are then memory-mapped from the file rather than
    read, so a 10M-face index opens at once and pages in only the lists a query
    probes. Such an index must never be added to (FAISS aborts the process).
    """
    import faiss

    path = vector_path(folder, generation)
    if not path.is_file():
        return None
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mapped else 0)
    except RuntimeError as exc:
        logger.warning("%s is unreadable (%s); rebuilding from the metadata store", path, exc)
        return None
    apply_search_params(index, search_params)
    return index


def latest_index(folder: Path, before: int, search_params: str = ""):
    """The newest readable saved index of a generation before ``before`` (memory-mapped), or None."""
    generations = sorted((int(m.group(1)) for m in map(VECTOR_FILE.match, os.listdir(folder)) if m), reverse=True)
    for generation in generations:
        if generation < before:
            index = load_index(folder, generation, search_params, mapped=True)
            if index is not None:
                return index
    return None
