"""The SQLite half of an index: what every vector is, and the vectors themselves.

SQLite is the index's source of truth. It holds each face's box, the content
hash of the image it came from, and its embedding; each file path points at a
content hash, so a moved or duplicated photo shares its faces. Every committed
change bumps ``generation``; the FAISS file is a cache of the vectors stamped
with the generation it was built from.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from embedkit.errors import IndexStoreError

logger = logging.getLogger(__name__)

STORE_FORMAT = "embedkit-index/1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    label TEXT,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE TABLE IF NOT EXISTS contents (
    sha256 TEXT PRIMARY KEY,
    n_faces INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL REFERENCES contents(sha256),
    face_no INTEGER NOT NULL,
    x REAL, y REAL, w REAL, h REAL,
    score REAL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_sha ON faces(sha256);
CREATE TABLE IF NOT EXISTS main_faces (sha256 TEXT PRIMARY KEY, face_no INTEGER NOT NULL);
"""


def to_db_text(text: str | None):
    """A path or label as SQLite keeps it: text when it is valid UTF-8, else its
    raw bytes (a BLOB), so names from other systems are stored losslessly."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8 in the file name
        return os.fsencode(text)


def from_db_text(value) -> str | None:
    """The inverse of :func:`to_db_text` (raw bytes come back as ``os.fsdecode`` gives them)."""
    return os.fsdecode(bytes(value)) if isinstance(value, (bytes, memoryview)) else value


def _rounded(value, digits: int) -> float | None:
    """A stored number, rounded; None where the database holds something else."""
    return round(value, digits) if isinstance(value, (int, float)) else None


@dataclass
class StoredFace:
    id: int
    sha256: str
    face_no: int
    box: tuple[float, float, float, float]
    score: float


class MetadataStore:
    """A SQLite database in WAL mode: readers never block the writer and see
    only committed transactions."""

    def __init__(self, path: Path, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise IndexStoreError(f"{self.path.parent}: no embedkit index here")
        self.read_only = False
        try:
            self.db = self._connect(create)
            if create:
                self._create_tables()
            fmt = self.get_info("format")
            if fmt != STORE_FORMAT:
                raise IndexStoreError(f"{self.path.parent}: index format {fmt!r} is not {STORE_FORMAT!r}")
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(f"{self.path}: not a readable index database ({exc})") from None

    def _create_tables(self) -> None:
        """Make the tables of a new database, in one transaction (a killed run leaves all or none).

        Only a database without tables is new: one with tables missing is
        damaged and is reported, never silently refilled. Two processes may
        create the same index at once: neither overwrites the other.
        """
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if not self.db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.executemany("INSERT INTO info(key, value) VALUES (?, ?)",
                                    [("format", STORE_FORMAT), ("generation", "0"), ("created", str(time.time()))])
            self.db.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def _connect(self, create: bool) -> sqlite3.Connection:
        """Open read-write in WAL mode; an index on a read-only disk or folder is opened read-only."""
        db = sqlite3.connect(os.fsencode(self.path), timeout=60, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            return db
        except sqlite3.OperationalError:
            db.close()
            if create:
                raise
        # WAL readers need the -shm file. Where it cannot be created (a
        # read-only mount), no writer can change the database either, so it
        # is safe to read it as immutable.
        uri = "file:" + quote(os.fsencode(self.path.resolve()))
        for params in ("mode=ro", "mode=ro&immutable=1"):
            db = sqlite3.connect(f"{uri}?{params}", uri=True, timeout=60, isolation_level=None,
                                 check_same_thread=False)
            try:
                db.execute("SELECT 1 FROM info LIMIT 1").fetchall()
            except sqlite3.OperationalError:
                db.close()
                continue
            logger.info("%s: opened read-only (%s)", self.path, params)
            self.read_only = True
            return db
        raise sqlite3.OperationalError("unable to open database file, even read-only")

    def close(self) -> None:
        self.db.close()

    # -- transactions ----------------------------------------------------------------------
    def _end_stray_transaction(self) -> None:
        """Roll back a transaction left open by an interrupt (Ctrl-C between BEGIN and COMMIT/ROLLBACK)
        in a process that goes on: nothing of it was committed."""
        if self.db.in_transaction:
            logger.debug("%s: rolling back a transaction left open by an interrupt", self.path)
            self.db.execute("ROLLBACK")

    def begin_read(self) -> None:
        """Start a read snapshot: later reads see one committed state."""
        self._end_stray_transaction()
        self.db.execute("BEGIN")
        self.db.execute("SELECT 1 FROM info LIMIT 1").fetchall()

    def begin_write(self) -> None:
        self._end_stray_transaction()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise IndexStoreError(f"{self.path.parent}: index cannot be written ({exc})") from None

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # -- info ------------------------------------------------------------------------------
    def get_info(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM info WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def info(self) -> dict:
        return dict(self.db.execute("SELECT key, value FROM info").fetchall())

    def get_int(self, key: str, default: int | None = None) -> int | None:
        """A whole-number setting; a damaged value is an IndexStoreError naming it."""
        value = self.get_info(key)
        if value is None:
            return default
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number < 0:
            raise self.damaged(key, value, "not a whole number")
        return number

    def get_json(self, key: str, default=None):
        """A JSON setting; a damaged value is an IndexStoreError naming it."""
        value = self.get_info(key)
        if value is None:
            return default
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            raise self.damaged(key, value, "not valid JSON") from None

    def damaged(self, key: str, value, why: str) -> IndexStoreError:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return IndexStoreError(f"{self.path}: damaged index database: {key} is {shown}, {why}")

    def set_info_many(self, values: dict) -> None:
        self.db.executemany("INSERT OR REPLACE INTO info(key, value) VALUES (?, ?)",
                            [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()])

    @property
    def generation(self) -> int:
        return self.get_int("generation", 0)

    def bump_generation(self) -> int:
        new = self.generation + 1
        self.set_info_many({"generation": str(new), "updated": str(time.time())})
        return new

    # -- files and contents ----------------------------------------------------------------
    def files_under(self, root: str) -> dict[str, tuple]:
        prefix = root.rstrip("/") + "/"
        rows = []
        if isinstance(to_db_text(prefix), str):  # under a folder whose name is not UTF-8, every path is bytes
            rows = self.db.execute(
                "SELECT path, sha256, size, mtime_ns FROM files WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
        byte_prefix = os.fsencode(prefix)
        rows += [row for row in self.db.execute(
            "SELECT path, sha256, size, mtime_ns FROM files WHERE typeof(path) = 'blob'") if row[0].startswith(byte_prefix)]
        return {from_db_text(r[0]): (r[1], r[2], r[3]) for r in rows}

    def has_content(self, sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM contents WHERE sha256 = ?", (sha256,)).fetchone() is not None

    def upsert_file(self, path: str, sha256: str, size: int, mtime_ns: int, label: str | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO files(path, sha256, size, mtime_ns, label, indexed_at) VALUES (?,?,?,?,?,?)",
            (to_db_text(path), sha256, size, mtime_ns, to_db_text(label), time.time()),
        )

    def add_content(self, sha256: str, faces, vectors: np.ndarray) -> list[int]:
        """Record an image's faces and vectors (and which is its main face); returns the new face ids."""
        from embedkit.faces.select import main_face

        self.db.execute("INSERT OR REPLACE INTO contents(sha256, n_faces) VALUES (?, ?)", (sha256, len(faces)))
        if faces:
            self.db.execute("INSERT OR REPLACE INTO main_faces(sha256, face_no) VALUES (?, ?)",
                            (sha256, faces[main_face(faces)].face_no))
        ids = []
        for face, vector in zip(faces, vectors):
            x, y, w, h = face.box
            cur = self.db.execute(
                "INSERT INTO faces(sha256, face_no, x, y, w, h, score, vector) VALUES (?,?,?,?,?,?,?,?)",
                (sha256, face.face_no, x, y, w, h, face.score, np.asarray(vector, np.float32).tobytes()),
            )
            ids.append(cur.lastrowid)
        return ids

    def remove_file(self, path: str) -> None:
        self.db.execute("DELETE FROM files WHERE path = ?", (to_db_text(path),))

    def orphan_face_ids(self) -> list[int]:
        """Faces whose image content no file points at any more."""
        rows = self.db.execute(
            "SELECT id FROM faces WHERE sha256 NOT IN (SELECT sha256 FROM files)"
        ).fetchall()
        return [r[0] for r in rows]

    def drop_orphans(self) -> list[int]:
        ids = self.orphan_face_ids()
        self.db.execute("DELETE FROM faces WHERE sha256 NOT IN (SELECT sha256 FROM files)")
        self.db.execute("DELETE FROM contents WHERE sha256 NOT IN (SELECT sha256 FROM files)")
        self.db.execute("DELETE FROM main_faces WHERE sha256 NOT IN (SELECT sha256 FROM files)")
        return ids

    # -- reading ---------------------------------------------------------------------------
    def counts(self) -> dict:
        one = lambda q: self.db.execute(q).fetchone()[0]  # noqa: E731
        return {
            "files": one("SELECT COUNT(*) FROM files"),
            "faces": one("SELECT COUNT(*) FROM faces"),
            "files_without_faces": one(
                "SELECT COUNT(*) FROM files JOIN contents USING(sha256) WHERE contents.n_faces = 0"),
        }

    def all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """All face ids and their vectors, ids ascending."""
        rows = self.db.execute("SELECT id, vector FROM faces ORDER BY id").fetchall()
        for face_id, blob in rows:
            if not isinstance(blob, bytes) or len(blob) != dim * 4:
                raise IndexStoreError(
                    f"{self.path}: damaged index database: the vector of face {face_id} is not {dim} float32 "
                    f"numbers; run `embedkit index --verify --repair`")
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vectors

    def face_ids(self) -> np.ndarray:
        rows = self.db.execute("SELECT id FROM faces ORDER BY id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def describe_faces(self, ids) -> dict[int, dict]:
        """Box, face number, paths and label of each face id."""
        ids = [int(i) for i in ids if i >= 0]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        faces = self.db.execute(
            f"SELECT id, sha256, face_no, x, y, w, h, score FROM faces WHERE id IN ({marks})", ids
        ).fetchall()
        shas = sorted({f[1] for f in faces})
        smarks = ",".join("?" * len(shas))
        files: dict[str, list] = {}
        for path, sha, label in self.db.execute(
            f"SELECT path, sha256, label FROM files WHERE sha256 IN ({smarks}) ORDER BY path", shas
        ):
            files.setdefault(sha, []).append((from_db_text(path), from_db_text(label)))
        main = self.main_faces(shas)
        out = {}
        for fid, sha, face_no, x, y, w, h, score in faces:
            where = files.get(sha, [])
            out[fid] = {
                "face_id": fid,
                "path": where[0][0] if where else None,
                "paths": [p for p, _ in where],
                # A photo's label names its main face, not the bystanders around it.
                "label": where[0][1] if where and face_no == main.get(sha, 0) else None,
                "face_no": face_no,
                "box": [_rounded(v, 1) for v in (x, y, w, h)],
                "detector_score": _rounded(score, 4),
                "sha256": sha,
            }
        return out

    def main_faces(self, shas) -> dict[str, int]:
        """``{sha256: face_no}`` of each image's main face (images indexed before it was recorded: none)."""
        shas = list(shas)
        if not shas:
            return {}
        marks = ",".join("?" * len(shas))
        try:
            return dict(self.db.execute(f"SELECT sha256, face_no FROM main_faces WHERE sha256 IN ({marks})", shas))
        except sqlite3.OperationalError:  # an index made before main faces were recorded, opened read-only
            return {}

    def face_vectors(self, ids) -> np.ndarray:
        ids = [int(i) for i in ids]
        marks = ",".join("?" * len(ids))
        rows = dict(self.db.execute(f"SELECT id, vector FROM faces WHERE id IN ({marks})", ids).fetchall())
        return np.stack([np.frombuffer(rows[i], np.float32) for i in ids])

    def record_vectors(self, record: dict) -> None:
        """Remember which FAISS file (checksum, type, size) belongs to which generation."""
        self.begin_write()
        try:
            self.set_info_many({"vectors": json.dumps(record)})
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def vectors_record(self) -> dict | None:
        record = self.get_json("vectors")
        return record if isinstance(record, dict) else None

    def incomplete_contents(self) -> list[str]:
        """Images whose recorded number of faces is not the number of faces stored for them."""
        rows = self.db.execute(
            "SELECT sha256 FROM contents WHERE n_faces != (SELECT COUNT(*) FROM faces WHERE faces.sha256 = "
            "contents.sha256)")
        return [r[0] for r in rows]

    def forget_contents(self, shas) -> None:
        """Drop images (their files, faces and record) so the next update embeds them again."""
        for sha in shas:
            for table in ("files", "faces", "contents"):
                self.db.execute(f"DELETE FROM {table} WHERE sha256 = ?", (sha,))

    def dangling_files(self) -> list[str]:
        """Files whose content was never recorded (should not happen)."""
        rows = self.db.execute("SELECT path FROM files WHERE sha256 NOT IN (SELECT sha256 FROM contents)")
        return [from_db_text(r[0]) for r in rows]

    def bad_vectors(self, dim: int) -> list[int]:
        bad = []
        for fid, blob in self.db.execute("SELECT id, vector FROM faces"):
            vec = np.frombuffer(blob, np.float32) if isinstance(blob, bytes) and len(blob) == dim * 4 else None
            if vec is None or not np.isfinite(vec).all() or abs(float(vec @ vec) - 1.0) > 1e-3:
                bad.append(fid)
        return bad

    def forget_contents_of(self, ids) -> None:
        """Drop the faces ``ids`` and every file whose image holds one of them."""
        for (face_id,) in [(int(i),) for i in ids]:
            self.db.execute("DELETE FROM files WHERE sha256 IN (SELECT sha256 FROM faces WHERE id = ?)", (face_id,))
            self.db.execute("DELETE FROM faces WHERE id = ?", (face_id,))

    def max_face_id(self) -> int:
        """The largest face id (at least the number of faces), without counting them: 0 if none."""
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM faces").fetchone()[0]

    def vectors_by_id(self, ids) -> dict[int, np.ndarray]:
        """The stored vectors of those ``ids`` that exist."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT id, vector FROM faces WHERE id IN ({marks})", ids)
        return {fid: np.frombuffer(blob, np.float32) for fid, blob in rows}
