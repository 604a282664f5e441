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
from embedkit.hashing import sha256_of  # in chunks: a large index never sits in memory twice

logger = logging.getLogger(__name__)

DEFAULT_FACTORY = "IDMap,Flat"
# Larger embedding sizes in an index's metadata are damage, not a model.
MAX_DIM = 65536
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
        return faiss.index_factory(dim, normalise_factory(factory, dim), faiss.METRIC_INNER_PRODUCT)
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
        skip_polysemous_training(index, search_params)
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


def skip_polysemous_training(index, search_params: str = "") -> None:
    """Turn off FAISS's polysemous training of PQ codes, unless ``search_params``
    set the Hamming threshold (``ht``) that is its only use.

    ``index_factory`` turns it on for every ``PQ`` (not ``PQ..np``) factory: an
    annealing pass per sub-quantizer that takes seconds each whatever the number
    of vectors (two minutes for ``PQ32``) and changes nothing in a search without
    ``ht``; codes, recall and scores are the same as without it.
    """
    import faiss

    if any(item.partition("=")[0].strip() == "ht" for item in (search_params or "").split(",")):
        return
    while index is not None:
        index = faiss.downcast_index(index)
        if hasattr(index, "do_polysemous_training"):
            index.do_polysemous_training = False
        index = getattr(index, "index", None)  # inside an IDMap or a transform


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


def index_type(index) -> str:
    """``IndexIDMap2/IndexIVFFlat``: the FAISS classes of an index and the one inside its id map."""
    import faiss

    outer = faiss.downcast_index(index) if type(index) is faiss.Index else index
    inner = faiss.downcast_index(outer.index) if hasattr(outer, "id_map") else None
    names = [type(outer).__name__] + ([type(inner).__name__] if inner is not None else [])
    # A flat index reads back as IndexFlatIP or IndexFlatL2; its metric is recorded on its own.
    names = ["IndexFlat" if name.startswith("IndexFlat") else name for name in names]
    return "/".join(names) + ("" if outer.metric_type == faiss.METRIC_INNER_PRODUCT else " (not inner product)")


def _record(index, generation: int, sha256: str) -> dict:
    return {"generation": generation, "sha256": sha256, "type": index_type(index), "dim": int(index.d),
            "ntotal": int(index.ntotal)}


def stage_file(index, folder: Path, generation: int) -> tuple[Path, dict]:
    """Write ``index`` to a temporary file in ``folder`` (synced to disk) and
    return it with the record that identifies it: generation, content checksum,
    type, dimension and size. The caller keeps the record in the store, then
    :func:`publish_file` puts the file in place, so a FAISS file on disk always
    has its record and one that is not the file written for a generation is
    recognised and never searched."""
    import faiss

    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".vectors-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; readers may be other users
            # Through Python's file: FAISS takes no path that is not UTF-8 (a folder from an old archive).
            writer = faiss.PyCallbackIOWriter(f.write)
            faiss.write_index(index, writer)
            del writer
            f.flush()
            os.fsync(f.fileno())
        return Path(tmp), _record(index, generation, sha256_of(Path(tmp)))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def publish_file(staged: Path, folder: Path, generation: int) -> Path:
    """Move a staged file into place as ``vectors-<generation>.faiss``, then drop older files."""
    target = vector_path(folder, generation)
    try:
        os.replace(staged, target)
    finally:
        if staged.exists():
            staged.unlink()
    for old in folder.iterdir():
        match = VECTOR_FILE.match(old.name)
        if match and int(match.group(1)) != generation:
            try:
                old.unlink()
            except OSError:
                pass
    return target


def save_index(index, folder: Path, generation: int) -> tuple[Path, dict]:
    """:func:`stage_file` then :func:`publish_file`: the path written and its record (to keep in the store)."""
    staged, record = stage_file(index, folder, generation)
    return publish_file(staged, folder, generation), record


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# A FAISS file larger than this many bytes a vector (plus a fixed allowance
# for trained structures) is not read: a damaged file must not exhaust memory.
MAX_FILE_SLACK = 256 << 20


def _has_ids(index) -> bool:
    """Whether the index maps its vectors to face ids (an id map, or an IVF index's own lists)."""
    import faiss

    if hasattr(index, "id_map"):
        return True
    try:
        faiss.extract_index_ivf(index)
    except RuntimeError:
        return False
    return True


def _utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read(path: Path, mapped: bool, data: bytes | None = None):
    """A FAISS index from ``path``: memory-mapped when asked and FAISS can name the file (a UTF-8
    path), else read whole (from ``data`` if already read)."""
    import faiss

    if mapped and _utf8(path):
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    return faiss.deserialize_index(np.frombuffer(path.read_bytes() if data is None else data, dtype=np.uint8))


def read_checked(folder: Path, generation: int, record: dict | None, dim: int, search_params: str = "",
                 mapped: bool = False):
    """The FAISS index saved for ``generation``, checked against its ``record``.

    Returns ``(index, None)`` when the file is the one written for this
    generation, ``(None, None)`` when there is no file, and ``(None, reason)``
    when there is one that must not be searched: unreadable, or its
    checksum, type, dimension or size not what was recorded.

    ``mapped``: for searching only. An IVF index's inverted lists (its codes and
    ids, nearly all of its size) are then memory-mapped from the file rather
    than read, so a 10M-face index opens without holding its vectors in memory
    and pages in only the lists a query probes (the checksum is still computed,
    reading the file once in chunks). Such an index must never be added to.
    """
    path = vector_path(folder, generation)
    if not path.is_file():
        return None, None
    if not record or record.get("generation") != generation:
        return None, f"{path.name} has no recorded checksum for generation {generation}"
    try:
        if path.stat().st_size > record.get("ntotal", 0) * (dim * 4 + 64) + MAX_FILE_SLACK:
            return None, f"{path.name} is far larger than {record.get('ntotal')} vectors need"
        mapped = mapped and _utf8(path)  # FAISS maps only files it can name; others are read
        data = None if mapped else path.read_bytes()
        sha256 = sha256_of(path) if mapped else hashlib.sha256(data).hexdigest()
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror or exc})"
    if sha256 != record.get("sha256"):
        return None, f"{path.name} is not the file written for generation {generation} (checksum differs)"
    try:
        index = _read(path, mapped, data)
    except RuntimeError as exc:
        return None, f"{path.name} is unreadable ({str(exc).splitlines()[-1]})"
    if not _has_ids(index):
        return None, f"{path.name} is a {index_type(index)} index without face ids"
    found = {"type": index_type(index), "dim": int(index.d), "ntotal": int(index.ntotal)}
    if index.d != dim or any(record.get(key) != value for key, value in found.items()):
        return None, (f"{path.name} holds a {found['dim']}-d {found['type']} index of {found['ntotal']} vectors; "
                      f"the store recorded a {record.get('dim')}-d {record.get('type')} of {record.get('ntotal')}")
    if not record.get("exact_until_trained"):  # an exact stand-in takes no search parameters
        apply_search_params(index, search_params)
    return index, None


def load_index(folder: Path, generation: int, search_params: str = "", mapped: bool = False):
    """The saved index for ``generation`` without a record to check it against, or None.

    Only for files whose scores are checked otherwise: an earlier generation's
    file searched while an update runs (:func:`latest_index`; every match is
    rescored from the store), or a benchmark's own file.
    """
    path = vector_path(folder, generation)
    if not path.is_file():
        return None
    try:
        index = _read(path, mapped)
    except (RuntimeError, OSError) as exc:
        logger.warning("%s is unreadable (%s)", path, exc)
        return None
    if not _has_ids(index):
        logger.warning("%s is a %s index without face ids", path, index_type(index))
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


def contents_problem(index, ids: np.ndarray, vectors: np.ndarray) -> str | None:
    """Whether the vectors inside ``index`` are the stored ``vectors`` of ``ids``
    (as its own coding stores them); None if they are, else what differs."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    faiss_ids = index_ids(index)
    if len(faiss_ids) != len(ids) or not np.array_equal(np.sort(faiss_ids), ids):
        return None  # ids are compared (and reported) separately
    try:
        if hasattr(index, "id_map"):
            if hasattr(inner, "make_direct_map"):
                inner.make_direct_map()
            held = inner.reconstruct_n(0, inner.ntotal) if inner.ntotal else np.zeros((0, index.d), np.float32)
        else:  # an IVF index keeps face ids itself: reconstruct by id through a hash-table direct map
            faiss.extract_index_ivf(index).set_direct_map_type(faiss.DirectMap.Hashtable)
            held = np.stack([inner.reconstruct(int(i)) for i in faiss_ids]) if len(faiss_ids) else \
                np.zeros((0, index.d), np.float32)
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
