"""A searchable face index on disk: SQLite metadata + FAISS vectors.

Layout of an index folder::

    metadata.sqlite        faces, files, vectors, model id (WAL mode)
    vectors-<gen>.faiss    FAISS index built from generation <gen> of the store
    writer.lock            held by the one process updating the index

Writes are crash-safe: SQLite commits batches atomically and the FAISS file
is replaced by rename. A reader opens a snapshot of the store and uses the
FAISS file of that snapshot's generation; if there is none (an update is
under way, or one was killed) it searches the snapshot's vectors exactly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from embedkit.errors import EmbedkitError, IndexMismatchError, IndexStoreError
from embedkit.index import vectors as vec
from embedkit.index.scan import ScanProblem, label_for, walk_images
from embedkit.index.store import MetadataStore
from embedkit.pipeline import Embedder, FacePipeline

logger = logging.getLogger(__name__)

STORE_FILE = "metadata.sqlite"
# Below this many faces, a search that finds no current FAISS file searches the store's vectors exactly.
EXACT_FALLBACK_FACES = 200_000
# Indexes with compressed codes return this many times k candidates, rescored exactly from the store.
RESCORE_FACTOR = 10
LOCK_FILE = "writer.lock"


@dataclass
class IndexReport:
    """What one ``update`` did."""

    folder: str
    index: str
    files_seen: int = 0
    unchanged: int = 0
    embedded_files: int = 0
    reused_files: int = 0
    removed_files: int = 0
    faces_added: int = 0
    faces_removed: int = 0
    files_without_faces: int = 0
    errors: list[dict] = field(default_factory=list)
    total_files: int = 0
    total_faces: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def to_dict(self) -> dict:
        data = asdict(self)
        data["n_errors"] = len(self.errors)
        return data


class FaceIndex:
    """Open with :meth:`open` (existing) or :meth:`create` (new or existing)."""

    def __init__(self, folder: Path, store: MetadataStore):
        self.folder = Path(folder)
        self.store = store
        self._cached = None  # (generation, faiss index, whether that index is of an earlier generation)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, folder) -> "FaceIndex":
        folder = Path(folder)
        if not (folder / STORE_FILE).is_file():
            raise IndexStoreError(f"{folder}: no embedkit index here (run `embedkit index DIR` first)")
        return cls(folder, MetadataStore(folder / STORE_FILE))

    @classmethod
    def create(cls, folder) -> "FaceIndex":
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexStoreError(f"{folder}: cannot create index folder ({exc.strerror})") from None
        return cls(folder, MetadataStore(folder / STORE_FILE, create=True))

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- what it holds ---------------------------------------------------------------------
    @property
    def info(self) -> dict:
        return self.store.info()

    @property
    def source(self) -> dict:
        """How the index's pipeline was made (backbone or model folder, detector), as given to update."""
        return json.loads(self.store.get_info("source", "{}"))

    @property
    def dim(self) -> int | None:
        value = self.store.get_info("embedding_dim")
        return int(value) if value else None

    @property
    def factory(self) -> str:
        return self.store.get_info("factory", vec.DEFAULT_FACTORY)

    @property
    def search_params(self) -> str:
        return self.store.get_info("search_params", "")

    def stats(self) -> dict:
        info = self.info
        counts = self.store.counts()
        return {
            "index": str(self.folder),
            "model_id": info.get("model_id"),
            "backbone": info.get("backbone"),
            "embedding_dim": self.dim,
            "factory": self.factory,
            "extractor": json.loads(info.get("extractor", "null")),
            "generation": int(info.get("generation", 0)),
            **counts,
        }

    def check_compatible(self, pipeline: FacePipeline) -> None:
        """Refuse an encoder or face extractor other than the index's own."""
        info = self.info
        encoder = pipeline.encoder
        stored_model = info.get("model_id")
        if stored_model is None:
            return
        if stored_model != encoder.model_id or int(info["embedding_dim"]) != encoder.embedding_dim:
            raise IndexMismatchError(
                f"{self.folder}: index was built with model {stored_model} ({info['embedding_dim']}-d); "
                f"this run uses {encoder.model_id} ({encoder.embedding_dim}-d). Use the same --backbone/--model, "
                f"or another --index"
            )
        stored_extractor = json.loads(info.get("extractor", "null"))
        if stored_extractor is not None and stored_extractor != pipeline.extractor.describe():
            raise IndexMismatchError(
                f"{self.folder}: index was built with face settings {stored_extractor}; this run uses "
                f"{pipeline.extractor.describe()}. Use the same --detector/--no-detect/--center-crop, or another --index"
            )

    # -- updating --------------------------------------------------------------------------
    def writer_lock(self, timeout: float | None = None):
        from filelock import FileLock

        return FileLock(str(self.folder / LOCK_FILE), timeout=-1 if timeout is None else timeout)

    def _acquire_writer_lock(self, timeout: float | None = None):
        """The writer lock, held; waits (saying so) while another process holds it."""
        from filelock import Timeout

        if self.store.read_only:
            raise IndexStoreError(f"{self.folder}: index is read-only here; it can be searched, not updated")
        lock = self.writer_lock(timeout)
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                logger.warning("%s: another embedkit process is updating this index; waiting for it", self.folder)
                lock.acquire()
        except Timeout:
            raise EmbedkitError(f"{self.folder}: still locked by another embedkit process; try again later") from None
        except OSError as exc:
            raise IndexStoreError(f"{self.folder}: cannot lock the index for writing ({exc.strerror or exc})") from None
        return lock

    def update(self, root, pipeline: FacePipeline, labels: bool = False, factory: str | None = None,
               search_params: str | None = None, commit_every: int = 64,
               progress: Callable[[str], None] | None = None, on_start: Callable[[int], None] | None = None,
               lock_timeout: float | None = None, source: dict | None = None,
               embedder: Embedder | None = None) -> IndexReport:
        """Bring the index in line with the images under ``root``.

        New and changed files are embedded, unchanged ones skipped, moved or
        duplicated ones (same content hash) reuse their faces, and files gone
        from ``root`` lose theirs. Work is committed every ``commit_every``
        files, so an interrupted run resumes where it stopped.

        ``embedder`` hashes and embeds the files (default: ``pipeline``, in this
        process); e.g. a :class:`embedkit.distributed.RayEmbedder` fans the work
        out over a cluster while this process stays the one writer. It must
        embed as ``pipeline`` does: ``pipeline`` decides the index's settings.
        """
        root = Path(root)
        if not root.is_dir():
            raise EmbedkitError(f"{root}: not a folder")
        root = Path(os.path.abspath(root))
        lock = self._acquire_writer_lock(lock_timeout)
        try:
            return self._update_locked(root, pipeline, labels, factory, search_params, commit_every, progress,
                                       on_start, source, embedder or pipeline)
        finally:
            lock.release()

    def _settings_for(self, pipeline: FacePipeline, factory: str | None, search_params: str | None,
                      source: dict | None) -> dict:
        encoder = pipeline.encoder
        settings = {}
        if self.store.get_info("model_id") is None:
            settings.update({
                "model_id": encoder.model_id,
                "backbone": encoder.backbone,
                "embedding_dim": str(encoder.embedding_dim),
                "extractor": json.dumps(pipeline.extractor.describe()),
                "factory": factory or vec.DEFAULT_FACTORY,
                "source": json.dumps(source or {}),
            })
        elif factory and factory != self.factory:
            settings["factory"] = factory
            settings["search_params"] = ""  # the old index type's parameters may not apply
        if search_params is not None:
            settings["search_params"] = search_params
        return settings

    def _update_locked(self, root, pipeline, labels, factory, search_params, commit_every, progress, on_start,
                       source, embedder):
        started = time.time()
        self.check_compatible(pipeline)
        report = IndexReport(folder=str(root), index=str(self.folder))
        store = self.store
        settings = self._settings_for(pipeline, factory, search_params, source)
        if factory:
            vec.build_index(factory, pipeline.encoder.embedding_dim, np.zeros(0, np.int64),
                            np.zeros((0, pipeline.encoder.embedding_dim), np.float32))  # validate early
        start_generation = store.generation
        # A new factory (or a new index) means building the FAISS index afresh.
        index = None if "factory" in settings else self._load_for_update(start_generation)

        known = store.files_under(str(root))
        problems: list[ScanProblem] = []
        seen: set[str] = set()
        reused, to_embed, changed = [], [], []
        for path in walk_images(root, problems):
            key = str(path)
            seen.add(key)
            report.files_seen += 1
            try:
                st = path.stat()
            except OSError as exc:
                problems.append(ScanProblem(key, f"cannot be read ({exc.strerror or exc})"))
                continue
            if key in known and known[key][1:] == (st.st_size, st.st_mtime_ns):
                report.unchanged += 1
                continue
            changed.append((key, st.st_size, st.st_mtime_ns, label_for(path, root) if labels else None))
        for (key, size, mtime, label), (sha, reason) in zip(changed, embedder.hash_files(c[0] for c in changed)):
            if reason:
                problems.append(ScanProblem(key, reason))
                continue
            item = (key, sha, size, mtime, label)
            (reused if store.has_content(sha) else to_embed).append(item)
        removed_paths = [p for p in known if p not in seen]

        removed_ids: list[int] = []
        added_ids: list[np.ndarray] = []
        added_vectors: list[np.ndarray] = []
        store.begin_write()
        try:
            store.set_info_many(settings)
            for key, sha, size, mtime, label in reused:
                store.upsert_file(key, sha, size, mtime, label)
            for key in removed_paths:
                store.remove_file(key)
            removed_ids.extend(store.drop_orphans())
            store.bump_generation()
            store.commit()
        except BaseException:
            store.rollback()
            raise
        report.reused_files = len(reused)
        report.removed_files = len(removed_paths)
        report.faces_removed = len(removed_ids)
        for key, *_ in reused:
            if progress:
                progress(key)
        if on_start:
            on_start(len(to_embed))

        by_path = {item[0]: item for item in to_embed}
        batch = []

        def commit_batch():
            if not batch:
                return
            new_ids, new_vectors = [], []
            store.begin_write()
            try:
                for result in batch:
                    key, sha, size, mtime, label = by_path[result.path]
                    if not store.has_content(sha):
                        ids = store.add_content(sha, result.faces, result.embeddings)
                        if ids:
                            new_ids.append(np.asarray(ids, np.int64))
                            new_vectors.append(result.embeddings)
                    store.upsert_file(key, sha, size, mtime, label)
                # A file changed in place leaves its old content's faces to no file.
                dropped = store.drop_orphans()
                store.bump_generation()
                store.commit()
            except BaseException:
                store.rollback()
                raise
            removed_ids.extend(dropped)
            report.faces_removed += len(dropped)
            added_ids.extend(new_ids)
            added_vectors.extend(new_vectors)
            report.faces_added += sum(len(i) for i in new_ids)
            batch.clear()

        try:
            last_commit = time.time()
            for result in embedder.embed_files(item[0] for item in to_embed):
                if result.error:
                    problems.append(ScanProblem(result.path, result.error))
                else:
                    report.embedded_files += 1
                    if not result.faces:
                        report.files_without_faces += 1
                    batch.append(result)
                if progress:
                    progress(result.path)
                if len(batch) >= commit_every or time.time() - last_commit > 10:
                    commit_batch()
                    last_commit = time.time()
            commit_batch()
        except KeyboardInterrupt:
            report.interrupted = True
            batch.clear()
        finally:
            self._save_vectors(index, removed_ids, added_ids, added_vectors)
            report.errors = [{"path": p.path, "reason": p.reason} for p in problems]
            counts = store.counts()
            report.total_files, report.total_faces = counts["files"], counts["faces"]
            report.seconds = round(time.time() - started, 2)
            for problem in problems:  # the report carries them; callers decide how to show them
                logger.info("skipped %s: %s", problem.path, problem.reason)
        return report

    def _load_for_update(self, generation: int):
        dim = self.dim
        if dim is None:
            return None
        return vec.load_index(self.folder, generation, self.search_params)

    def _save_vectors(self, index, removed_ids, added_ids, added_vectors) -> None:
        """Write the FAISS file for the store's current generation, incrementally if possible."""
        dim = self.dim
        if dim is None:
            return
        generation = self.store.generation
        if index is not None:
            try:
                if removed_ids:
                    index.remove_ids(np.asarray(removed_ids, np.int64))
                if added_ids:
                    index.add_with_ids(np.concatenate(added_vectors).astype(np.float32), np.concatenate(added_ids))
                if index.ntotal != self.store.counts()["faces"]:
                    raise RuntimeError("count mismatch after incremental update")
            except RuntimeError as exc:
                logger.info("rebuilding FAISS index from the store (%s)", exc)
                index = None
        if index is None:
            ids, vectors = self.store.all_vectors(dim)
            index = vec.build_index(self.factory, dim, ids, vectors, self.search_params)
        vec.save_index(index, self.folder, generation)
        self._cached = (generation, index, False)

    # -- searching -------------------------------------------------------------------------
    def _index_for(self, generation: int):
        """``(faiss index, stale)`` to search: stale if it is the file of an earlier generation."""
        if not (self._cached and self._cached[0] == generation):
            index = vec.load_index(self.folder, generation, self.search_params, mapped=True)
            stale = index is None
            if stale:
                index, stale = self._fallback_index(generation)
            self._cached = (generation, index, stale)
        return self._cached[1:]

    def _fallback_index(self, generation: int):
        """What to search when the FAISS file of ``generation`` is missing (an update is under way, or was killed)."""
        if self.store.max_face_id() <= EXACT_FALLBACK_FACES:
            logger.info("%s: no vector file for generation %d (update under way?); searching the committed "
                        "faces exactly", self.folder, generation)
            ids, vectors = self.store.all_vectors(self.dim)
            return vec.exact_index(self.dim, ids, vectors), False
        # Too many faces to read from SQLite: the last FAISS file written. Matches are
        # rescored from the store, so faces deleted since drop out and scores are exact.
        index = vec.latest_index(self.folder, generation, self.search_params)
        if index is None:
            raise IndexStoreError(f"{self.folder}: no FAISS file; run `embedkit index --verify --repair`")
        logger.warning("%s: searching the FAISS file of an earlier update (one is under way or was interrupted): "
                       "faces added since are not found until it finishes", self.folder)
        return index, True

    def search(self, embeddings: np.ndarray, k: int = 5) -> list[list[dict]]:
        """For each query embedding, the ``k`` nearest stored faces, best first.

        Each match is a dict with ``score`` (cosine similarity), ``path``,
        ``paths`` (all files with that content), ``label``, ``box``,
        ``face_no`` and ``face_id``.
        """
        embeddings = np.ascontiguousarray(np.atleast_2d(embeddings), dtype=np.float32)
        if self.dim is None:
            return [[] for _ in embeddings]
        if embeddings.shape[1] != self.dim:
            raise IndexMismatchError(f"{self.folder}: query embeddings are {embeddings.shape[1]}-d, index is {self.dim}-d")
        self.store.begin_read()
        try:
            generation = self.store.generation
            index, stale = self._index_for(generation)
            if index.ntotal == 0:
                return [[] for _ in embeddings]
            rescore = stale or vec.lossy(self.factory)
            scores, ids = vec.search(index, embeddings, min(k * RESCORE_FACTOR if rescore else k, index.ntotal))
            if rescore:
                scores, ids = self._rescore(embeddings, ids, k)
            described = self.store.describe_faces(np.unique(ids))
        finally:
            self.store.rollback()
        results = []
        for row_scores, row_ids in zip(scores, ids):
            matches = []
            for score, fid in zip(row_scores, row_ids):
                if fid < 0 or fid not in described:
                    continue
                matches.append({"score": round(float(score), 4), **described[fid]})
            results.append(matches)
        return results

    def _rescore(self, embeddings: np.ndarray, ids: np.ndarray, k: int):
        """Exact scores of the candidates ``ids`` from the store's vectors, best ``k`` first.

        FAISS's compressed codes (PQ, SQ) rank approximately; the store has the
        exact vectors, read here for a few candidates per query only.
        """
        stored = self.store.vectors_by_id(np.unique(ids[ids >= 0]))
        scores = np.full((len(ids), k), -np.inf, np.float32)
        best = np.full((len(ids), k), -1, np.int64)
        for row, (query, candidates) in enumerate(zip(embeddings, ids)):
            found = [int(i) for i in dict.fromkeys(candidates.tolist()) if i in stored]
            if not found:
                continue
            exact = np.stack([stored[i] for i in found]) @ query
            order = np.argsort(-exact, kind="stable")[:k]
            scores[row, :len(order)] = exact[order]
            best[row, :len(order)] = np.asarray(found)[order]
        return scores, best

    # -- checking --------------------------------------------------------------------------
    def verify(self, repair: bool = False) -> dict:
        """Check that vectors and metadata agree; with ``repair``, fix what can be fixed."""
        store = self.store
        dim = self.dim
        problems = []
        store.begin_read()
        try:
            generation = store.generation
            orphans = store.orphan_face_ids()
            dangling = store.dangling_files()
            bad = store.bad_vectors(dim) if dim else []
            store_ids = store.face_ids()
            vector_file = vec.vector_path(self.folder, generation)
            has_file = vector_file.is_file()
            index = vec.load_index(self.folder, generation) if has_file else None
        finally:
            store.rollback()
        notes = []
        if orphans:
            problems.append(f"{len(orphans)} faces belong to no file")
        if dangling:
            problems.append(f"{len(dangling)} files have no recorded faces")
        if bad:
            problems.append(f"{len(bad)} stored vectors are not unit-length {dim}-d vectors")
        if dim is not None:
            if not has_file:
                # An update was interrupted (or is under way): the FAISS file is a
                # cache; until it is rebuilt, searches use the store's vectors.
                notes.append(f"no FAISS file for generation {generation} yet (an update was interrupted or is "
                             f"running); searches use the stored vectors until the next update or --repair")
            elif index is None:
                problems.append(f"{vector_file.name} is unreadable")
            else:
                faiss_ids = np.sort(vec.index_ids(index))
                if index.d != dim:
                    problems.append(f"FAISS index is {index.d}-d, metadata says {dim}-d")
                if len(faiss_ids) != len(store_ids) or not np.array_equal(faiss_ids, store_ids):
                    problems.append(
                        f"FAISS holds {len(faiss_ids)} vectors, metadata {len(store_ids)} faces "
                        f"({len(np.setdiff1d(faiss_ids, store_ids))} unknown, "
                        f"{len(np.setdiff1d(store_ids, faiss_ids))} missing)"
                    )
        result = {"index": str(self.folder), "ok": not problems, "problems": problems, "notes": notes,
                  "faces": int(len(store_ids)), "generation": generation, "repaired": False}
        if repair and (problems or notes):
            lock = self._acquire_writer_lock()
            try:
                store.begin_write()
                try:  # look again under the lock: an update may have run meanwhile
                    dangling = store.dangling_files()
                    bad = store.bad_vectors(dim) if dim else []
                    for path in dangling:
                        store.remove_file(path)
                    store.delete_faces(bad)
                    store.drop_orphans()
                    store.bump_generation()
                    store.commit()
                except BaseException:
                    store.rollback()
                    raise
                self._save_vectors(None, [], [], [])
            finally:
                lock.release()
            result["repaired"] = True
            result["after"] = self.verify(repair=False)
        return result
