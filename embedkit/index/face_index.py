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

import functools
import json
import logging
import os
import sqlite3
import sys
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


def _reading(method):
    """A damaged database met while reading is one IndexStoreError line, not a traceback."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            self.store.rollback()
            raise IndexStoreError(f"{self.folder}: damaged index database ({exc})") from None

    return wrapper
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
        source = self.store.get_json("source", {})
        return source if isinstance(source, dict) else {}

    @property
    def dim(self) -> int | None:
        dim = self.store.get_int("embedding_dim")
        if dim is not None and not 1 <= dim <= vec.MAX_DIM:
            raise self.store.damaged("embedding_dim", dim, f"not a size from 1 to {vec.MAX_DIM}")
        return dim

    @property
    def factory(self) -> str:
        return self.store.get_info("factory", vec.DEFAULT_FACTORY)

    @property
    def search_params(self) -> str:
        return self.store.get_info("search_params", "")

    @_reading
    def stats(self) -> dict:
        info = self.info
        counts = self.store.counts()
        return {
            "index": str(self.folder),
            "model_id": info.get("model_id"),
            "backbone": info.get("backbone"),
            "embedding_dim": self.dim,
            "factory": self.factory,
            "extractor": self.store.get_json("extractor"),
            "generation": self.store.generation,
            **counts,
        }

    @_reading
    def check_compatible(self, pipeline: FacePipeline) -> None:
        """Refuse an encoder or face extractor other than the index's own."""
        info = self.info
        encoder = pipeline.encoder
        stored_model = info.get("model_id")
        if stored_model is None:
            return
        if stored_model != encoder.model_id or self.dim != encoder.embedding_dim:
            raise IndexMismatchError(
                f"{self.folder}: index was built with model {stored_model} ({self.dim}-d); "
                f"this run uses {encoder.model_id} ({encoder.embedding_dim}-d). Use the same --backbone/--model, "
                f"or another --index"
            )
        stored_extractor = self.store.get_json("extractor")
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
        except (sqlite3.DatabaseError, OSError) as exc:
            raise self._write_failed(exc) from None
        finally:
            lock.release()

    def _write_failed(self, exc: Exception) -> IndexStoreError:
        """One line for a failed write (a full disk, a damaged database): committed work is kept."""
        reason = getattr(exc, "strerror", None) or str(exc)
        return IndexStoreError(f"{self.folder}: cannot write the index ({reason}); everything committed "
                               f"before is kept, run again to resume")

    def _settings_for(self, pipeline: FacePipeline, factory: str | None, search_params: str | None,
                      source: dict | None) -> dict:
        """The settings this update stores, checked first: nothing is stored
        (and nothing embedded) with a factory or search parameters FAISS rejects."""
        encoder = pipeline.encoder
        settings = {}
        if self.store.get_info("model_id") is None:
            settings.update({
                "model_id": encoder.model_id,
                "backbone": encoder.backbone,
                "embedding_dim": str(encoder.embedding_dim),
                "extractor": json.dumps(pipeline.extractor.describe()),
                "factory": vec.DEFAULT_FACTORY if factory is None else factory,
                "source": json.dumps(source or {}),
            })
        elif factory is not None and factory != self.factory:
            settings["factory"] = factory
            settings["search_params"] = ""  # the old index type's parameters may not apply
        if search_params is not None:
            settings["search_params"] = search_params
        self._check_settings(settings.get("factory", self.factory), settings.get("search_params", self.search_params),
                             encoder.embedding_dim, given=factory is not None or search_params is not None)
        return settings

    def _check_settings(self, factory: str, search_params: str, dim: int, given: bool) -> None:
        try:
            vec.check_settings(factory, search_params, dim)
        except EmbedkitError as exc:
            hint = "" if given else " (stored in the index: give --factory or --search-params to replace them)"
            raise EmbedkitError(f"{self.folder}: {exc}{hint}") from None

    def _update_locked(self, root, pipeline, labels, factory, search_params, commit_every, progress, on_start,
                       source, embedder):
        started = time.time()
        self.check_compatible(pipeline)
        report = IndexReport(folder=str(root), index=str(self.folder))
        store = self.store
        settings = self._settings_for(pipeline, factory, search_params, source)
        start_generation = store.generation
        # A new factory (or a new index) means building the FAISS index afresh.
        index = None if "factory" in settings else self._load_for_update(
            start_generation, settings.get("search_params", self.search_params))

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
        if to_embed:
            pipeline.prepare(len(to_embed))
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
            self._save_vectors(index, removed_ids, added_ids, added_vectors, failing=sys.exc_info()[0] is not None)
            report.errors = [{"path": p.path, "reason": p.reason} for p in problems]
            counts = store.counts()
            report.total_files, report.total_faces = counts["files"], counts["faces"]
            report.seconds = round(time.time() - started, 2)
            for problem in problems:  # the report carries them; callers decide how to show them
                logger.info("skipped %s: %s", problem.path, problem.reason)
        return report

    def _load_for_update(self, generation: int, search_params: str):
        """The FAISS index to update in place, or None to build it afresh from the store."""
        dim = self.dim
        if dim is None:
            return None
        record = self.store.vectors_record()
        if record and record.get("exact_until_trained"):
            return None  # try training the factory again, on the faces there are now
        index, problem = vec.read_checked(self.folder, generation, record, dim, search_params)
        if problem:
            logger.warning("%s: %s; rebuilding it from the store", self.folder, problem)
        return index

    def _save_vectors(self, index, removed_ids, added_ids, added_vectors, failing: bool = False) -> None:
        """Write the FAISS file for the store's current generation, incrementally if possible.

        The file is a cache of the store: if it cannot be written (a full
        disk), searches use the stored vectors until the next update.
        """
        try:
            self._write_vectors(index, removed_ids, added_ids, added_vectors)
        except (OSError, RuntimeError, sqlite3.DatabaseError, IndexStoreError) as exc:
            if failing:  # the error already on its way says what went wrong
                logger.debug("FAISS file not written: %s", exc)
                return
            reason = getattr(exc, "strerror", None) or str(exc)
            logger.warning("%s: the FAISS file could not be written (%s); searches use the stored vectors "
                           "until the next update", self.folder, reason)

    def _write_vectors(self, index, removed_ids, added_ids, added_vectors) -> None:
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
        exact = False
        if index is None:
            index, exact = self._build_from_store(dim)
        staged, record = vec.stage_file(index, self.folder, generation)
        record["exact_until_trained"] = exact
        try:
            self.store.record_vectors(record)  # first: a file on disk always has its record
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        vec.publish_file(staged, self.folder, generation)
        self._cached = (generation, index, False)

    def _build_from_store(self, dim: int):
        """``(index, exact)``: the factory's index of every stored vector, or an
        exact one (``exact`` True) while there are too few faces to train it."""
        ids, vectors = self.store.all_vectors(dim)
        try:
            return vec.build_index(self.factory, dim, ids, vectors, self.search_params), False
        except vec.NotTrainedError as exc:
            logger.warning("%s: %s; searching exactly until there are enough faces", self.folder, exc)
            return vec.exact_index(dim, ids, vectors), True

    # -- searching -------------------------------------------------------------------------
    def _index_for(self, generation: int):
        """``(faiss index, stale)`` to search: stale if it is the file of an earlier generation."""
        if not (self._cached and self._cached[0] == generation):
            index, problem = vec.read_checked(self.folder, generation, self.store.vectors_record(), self.dim,
                                              self.search_params, mapped=True)
            stale = False
            if index is None:
                index, stale = self._fallback_index(generation, problem)
            self._cached = (generation, index, stale)
        return self._cached[1:]

    def _fallback_index(self, generation: int, problem: str | None):
        """What to search when the FAISS file of ``generation`` is missing (an update is under way, or one was
        killed) or must not be searched (``problem``: it is not the file written for this generation)."""
        if self.store.max_face_id() <= EXACT_FALLBACK_FACES:
            if problem:
                logger.warning("%s: %s; searching the stored vectors exactly (run `embedkit index --verify "
                               "--repair` to rebuild it)", self.folder, problem)
            else:
                logger.info("%s: no vector file for generation %d (update under way?); searching the committed "
                            "faces exactly", self.folder, generation)
            ids, vectors = self.store.all_vectors(self.dim)
            return vec.exact_index(self.dim, ids, vectors), False
        # Too many faces to read from SQLite: the last FAISS file written. Matches are
        # rescored from the store, so faces deleted since drop out and scores are exact.
        index = vec.latest_index(self.folder, generation, self.search_params)
        if index is None:
            raise IndexStoreError(f"{self.folder}: no FAISS file; run `embedkit index --verify --repair`")
        logger.warning("%s: %s; searching the FAISS file of an earlier update: faces added since are not found "
                       "until an update or `embedkit index --verify --repair` rebuilds it", self.folder,
                       problem or "an update is under way or was interrupted")
        return index, True

    @_reading
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
            try:
                scores, ids = vec.search(index, embeddings, min(k * RESCORE_FACTOR if rescore else k, index.ntotal))
            except RuntimeError as exc:  # settings FAISS took but cannot search with
                raise EmbedkitError(f"{self.folder}: search failed ({vec.faiss_reason(exc)}); check the index's "
                                    f"--search-params") from None
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
    def _read_stored_settings(self) -> None:
        """Read every stored setting once: a damaged one raises an IndexStoreError naming it."""
        self.stats()
        self.store.get_json("source")

    def _settings_problem(self, dim: int | None) -> str | None:
        try:
            self._check_settings(self.factory, self.search_params, dim or 8, given=False)
        except EmbedkitError as exc:
            return str(exc)
        return None

    @staticmethod
    def _vector_file_problems(index, store_ids, ids, vectors) -> list[str]:
        problems = []
        faiss_ids = np.sort(vec.index_ids(index))
        if len(faiss_ids) != len(store_ids) or not np.array_equal(faiss_ids, store_ids):
            problems.append(
                f"FAISS holds {len(faiss_ids)} vectors, metadata {len(store_ids)} faces "
                f"({len(np.setdiff1d(faiss_ids, store_ids))} unknown, "
                f"{len(np.setdiff1d(store_ids, faiss_ids))} missing)"
            )
        elif ids is not None:
            wrong = vec.contents_problem(index, ids, vectors)
            if wrong:
                problems.append(wrong)
        return problems

    @_reading
    def verify(self, repair: bool = False) -> dict:
        """Check that vectors and metadata agree; with ``repair``, fix what can be fixed.

        The FAISS file must be the one recorded for the store's generation
        (checksum, type, dimension, size), hold exactly the stored face ids,
        and hold each face's stored vector (as its coding keeps it).
        """
        store = self.store
        self._read_stored_settings()
        dim = self.dim
        problems, notes = [], []
        store.begin_read()
        try:
            generation = store.generation
            orphans = store.orphan_face_ids()
            dangling = store.dangling_files()
            incomplete = store.incomplete_contents()
            bad = store.bad_vectors(dim) if dim else []
            store_ids = store.face_ids()
            record = store.vectors_record()
            settings_problem = self._settings_problem(dim)
            index, file_problem = (vec.read_checked(self.folder, generation, record, dim) if dim
                                   else (None, None))
            ids, vectors = store.all_vectors(dim) if (dim and index is not None and not bad) else (None, None)
        finally:
            store.rollback()
        if orphans:
            problems.append(f"{len(orphans)} faces belong to no file")
        if dangling:
            problems.append(f"{len(dangling)} files have no recorded faces")
        if incomplete:
            problems.append(f"{len(incomplete)} images are missing some of their faces (repair forgets them, "
                            f"and the next update embeds them again)")
        if bad:
            problems.append(f"{len(bad)} stored vectors are not unit-length {dim}-d vectors")
        if settings_problem:
            problems.append(settings_problem)
        if dim is not None:
            if file_problem:
                problems.append(file_problem)
            elif index is None:
                # An update was interrupted (or is under way): the FAISS file is a
                # cache; until it is rebuilt, searches use the store's vectors.
                notes.append(f"no FAISS file for generation {generation} yet (an update was interrupted or is "
                             f"running); searches use the stored vectors until the next update or --repair")
            else:
                problems.extend(self._vector_file_problems(index, store_ids, ids, vectors))
                if record.get("exact_until_trained"):
                    notes.append(f"the {self.factory} index cannot be trained on {len(store_ids)} faces yet; "
                                 f"searches are exact until there are enough")
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
                    # A photo with a damaged vector is forgotten whole, so the next
                    # update embeds it again rather than keep it with a face missing.
                    store.forget_contents_of(bad)
                    store.forget_contents(store.incomplete_contents())
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
