"""The FAISS half of an index: building, saving and loading the vector search
structure. Vectors are unit length and compared by inner product (cosine)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

DEFAULT_FACTORY = "IDMap,Flat"
# Larger embedding sizes in an index's metadata are damage, not a model.
MAX_DIM = 65536
VECTOR_FILE = re.compile(r"^vectors-(\d+)\.faiss$")


def normalise_factory(factory: str) -> str:
    """Factory strings always get an ``IDMap`` so vectors keep their face ids."""
    factory = factory.strip()
    return factory if factory.startswith("IDMap") else f"IDMap2,{factory}"


class NotTrainedError(EmbedkitError):
    """A FAISS index type that needs more faces than there are to train."""


def faiss_reason(exc: RuntimeError) -> str:
    """The human part of a FAISS error (its messages start with a C++ signature)."""
    text = str(exc).splitlines()[-1] if str(exc) else exc.__class__.__name__
    for marker in ("failed: ", ".cpp:"):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    return text.split(":", 1)[1].strip() if text[:1].isdigit() and ":" in text else text.strip()


def new_index(factory: str, dim: int):
    """An empty index of ``factory`` (an EmbedkitError naming it if FAISS cannot parse it)."""
    import faiss

    try:
        return faiss.index_factory(dim, normalise_factory(factory), faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise EmbedkitError(f"invalid FAISS factory string {factory!r}: {faiss_reason(exc)}") from None


def check_settings(factory: str, search_params: str, dim: int) -> None:
    """Raise EmbedkitError unless ``factory`` and ``search_params`` make a usable index of ``dim``."""
    if not isinstance(factory, str) or not factory.strip():
        raise EmbedkitError(f"invalid FAISS factory string {factory!r}")
    apply_search_params(new_index(factory, dim), search_params)


def build_index(factory: str, dim: int, ids: np.ndarray, vectors: np.ndarray, search_params: str = ""):
    """A FAISS index of ``vectors`` under ``ids``, trained first if the factory
    needs it (NotTrainedError if there are too few vectors to train on)."""
    index = new_index(factory, dim)
    if not index.is_trained:
        if len(vectors) == 0:
            raise NotTrainedError(f"FAISS index {factory!r} needs faces to train on; there are none yet")
        try:
            index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        except RuntimeError as exc:
            raise NotTrainedError(
                f"FAISS index {factory!r} cannot be trained on {len(vectors)} faces ({faiss_reason(exc)})"
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

    problem = _search_params_problem(search_params)
    if problem:
        raise EmbedkitError(f"invalid FAISS search parameters {search_params!r}: {problem}")
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    try:
        faiss.ParameterSpace().set_index_parameters(inner, search_params)
    except RuntimeError as exc:
        raise EmbedkitError(f"invalid FAISS search parameters {search_params!r}: {faiss_reason(exc)}") from None


# Search parameters that count something (lists to probe, candidates to
# keep): FAISS accepts 0 or -1 for them and then fails or silently finds
# nothing at search time, so they must be whole numbers in this range.
COUNT_PARAMS = ("nprobe", "efSearch", "max_codes", "k_factor", "quantizer_efSearch", "nprobe_quantizer")
MAX_COUNT = 1 << 24


def _search_params_problem(search_params) -> str | None:
    """What is wrong with ``name=value,...`` before FAISS sees it (None if nothing)."""
    import math

    if not isinstance(search_params, str):
        return "not a string"
    for item in search_params.split(","):
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name.strip() or not math.isfinite(number):
            return f"{item.strip()!r} is not name=number"
        if name.strip() in COUNT_PARAMS and (number != int(number) or not 1 <= number <= MAX_COUNT):
            return f"{name.strip()} must be a whole number from 1 to {MAX_COUNT}"
    return None


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
    """The ids stored in an IDMap index."""
    import faiss

    return faiss.vector_to_array(index.id_map).astype(np.int64)


def vector_path(folder: Path, generation: int) -> Path:
    return folder / f"vectors-{generation}.faiss"


def index_type(index) -> str:
    """``IndexIDMap2/IndexIVFFlat``: the FAISS classes of an index and the one inside its id map."""
    import faiss

    outer = faiss.downcast_index(index) if type(index) is faiss.Index else index
    inner = faiss.downcast_index(outer.index) if hasattr(outer, "id_map") else None
    names = [type(outer).__name__] + ([type(inner).__name__] if inner is not None else [])
    # A flat index reads back as IndexFlatIP or IndexFlatL2; its metric is recorded on its own.
    names = ["IndexFlat" if name.startswith("IndexFlat") else name for name in names]
    return "/".join(names) + ("" if outer.metric_type == faiss.METRIC_INNER_PRODUCT else " (not inner product)")


def serialize(index, generation: int) -> tuple[bytes, dict]:
    """The bytes of ``index`` and the record that identifies them: generation,
    content checksum, type, dimension and size. The record is kept in the
    store, so a FAISS file that is not the one written for a generation is
    recognised and never searched."""
    import faiss

    data = faiss.serialize_index(index).tobytes()
    record = {"generation": generation, "sha256": hashlib.sha256(data).hexdigest(), "type": index_type(index),
              "dim": int(index.d), "ntotal": int(index.ntotal)}
    return data, record


def write_file(data: bytes, folder: Path, generation: int) -> Path:
    """Write ``data`` atomically as ``vectors-<generation>.faiss``, then drop older files."""
    target = vector_path(folder, generation)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".vectors-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; readers may be other users
            f.write(data)
            f.flush()
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


# A FAISS file larger than this many bytes a vector (plus a fixed allowance
# for trained structures) is not read: a damaged file must not exhaust memory.
MAX_FILE_SLACK = 256 << 20


def read_checked(folder: Path, generation: int, record: dict | None, dim: int, search_params: str = ""):
    """The FAISS index saved for ``generation``, checked against its ``record``.

    Returns ``(index, None)`` when the file is the one written for this
    generation, ``(None, None)`` when there is no file, and ``(None, reason)``
    when there is one that must not be searched: unreadable, or its
    checksum, type, dimension or size not what was recorded.
    """
    import faiss

    path = vector_path(folder, generation)
    if not path.is_file():
        return None, None
    if not record or record.get("generation") != generation:
        return None, f"{path.name} has no recorded checksum for generation {generation}"
    try:
        if path.stat().st_size > record.get("ntotal", 0) * (dim * 4 + 64) + MAX_FILE_SLACK:
            return None, f"{path.name} is far larger than {record.get('ntotal')} vectors need"
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror or exc})"
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        return None, f"{path.name} is not the file written for generation {generation} (checksum differs)"
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as exc:
        return None, f"{path.name} is unreadable ({str(exc).splitlines()[-1]})"
    if not hasattr(index, "id_map"):  # deserialize_index gives the index's own class
        return None, f"{path.name} is a {index_type(index)} index without face ids"
    found = {"type": index_type(index), "dim": int(index.d), "ntotal": int(index.ntotal)}
    if index.d != dim or any(record.get(key) != value for key, value in found.items()):
        return None, (f"{path.name} holds a {found['dim']}-d {found['type']} index of {found['ntotal']} vectors; "
                      f"the store recorded a {record.get('dim')}-d {record.get('type')} of {record.get('ntotal')}")
    if not record.get("exact_until_trained"):  # an exact stand-in takes no search parameters
        apply_search_params(index, search_params)
    return index, None


def contents_problem(index, ids: np.ndarray, vectors: np.ndarray) -> str | None:
    """Whether the vectors inside ``index`` are the stored ``vectors`` of ``ids``
    (as its own coding stores them); None if they are, else what differs."""
    import faiss

    inner = faiss.downcast_index(index.index)
    faiss_ids = index_ids(index)
    if len(faiss_ids) != len(ids) or not np.array_equal(np.sort(faiss_ids), ids):
        return None  # ids are compared (and reported) separately
    try:
        if hasattr(inner, "make_direct_map"):
            inner.make_direct_map()
        held = inner.reconstruct_n(0, inner.ntotal) if inner.ntotal else np.zeros((0, index.d), np.float32)
    except RuntimeError:
        return None  # this index type cannot give its vectors back: the checksum vouches for it
    expected = vectors[np.searchsorted(ids, faiss_ids)]
    try:
        expected = inner.sa_decode(inner.sa_encode(np.ascontiguousarray(expected)))  # as its codes store them
    except RuntimeError:
        pass
    wrong = np.flatnonzero(np.abs(held - expected).max(axis=1, initial=0.0) > 1e-4) if len(held) else []
    if len(wrong):
        return (f"{len(wrong)} FAISS vectors differ from the stored vectors of their faces "
                f"(e.g. face {int(faiss_ids[wrong[0]])})")
    return None
