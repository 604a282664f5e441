"""People tables: who each face belongs to, names, and the user's corrections.

They live in the index's SQLite database beside (never inside) the faces and
their vectors, in tables of their own. A face is referred to by its content
hash and number in that image (``sha256``, ``face_no``), so what the user
said about a face survives re-indexing: a moved or re-added photo gets the
same content hash, while a stale face id can never point at someone else.

Tables:

``people``          id, name (unique when set), created
``person_faces``    which person a face belongs to, and whether the user put it there (``pinned``)
``rejections``      a face the user took out of a person: it never rejoins that person
"""

from __future__ import annotations

import sqlite3
import time

from embedkit.errors import EmbedkitError
from embedkit.index.store import MetadataStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS person_faces (
    sha256 TEXT NOT NULL,
    face_no INTEGER NOT NULL,
    person_id INTEGER NOT NULL REFERENCES people(id),
    pinned INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sha256, face_no)
);
CREATE INDEX IF NOT EXISTS person_faces_person ON person_faces(person_id);
CREATE TABLE IF NOT EXISTS rejections (
    sha256 TEXT NOT NULL,
    face_no INTEGER NOT NULL,
    person_id INTEGER NOT NULL,
    PRIMARY KEY (sha256, face_no, person_id)
);
"""


class PeopleStore:
    """The people tables of one index's metadata store.

    Reads work on a read-only index; writes need a writable one. Every
    change is one transaction (see :meth:`write`).
    """

    def __init__(self, store: MetadataStore):
        self.store = store
        self.db = store.db
        if not self._has_tables():
            if store.read_only:
                return  # nothing stored yet: reads see no people
            self.db.executescript(SCHEMA)

    def _has_tables(self) -> bool:
        row = self.db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN "
                              "('people', 'person_faces', 'rejections')").fetchone()
        return row[0] == 3

    # -- transactions ----------------------------------------------------------------------
    def write(self):
        """A context manager: one write transaction, rolled back on error."""
        return _Transaction(self.store)

    # -- reading ---------------------------------------------------------------------------
    def faces(self) -> list[tuple]:
        """Every stored face: ``(face_id, sha256, face_no, w, h, score, person_id or None, pinned)``."""
        if not self._has_tables():
            return [(r[0], r[1], r[2], r[3], r[4], r[5], None, 0) for r in self.db.execute(
                "SELECT id, sha256, face_no, w, h, score FROM faces ORDER BY id")]
        return self.db.execute(
            "SELECT f.id, f.sha256, f.face_no, f.w, f.h, f.score, pf.person_id, COALESCE(pf.pinned, 0) "
            "FROM faces f LEFT JOIN person_faces pf ON pf.sha256 = f.sha256 AND pf.face_no = f.face_no "
            "ORDER BY f.id").fetchall()

    def people(self) -> dict[int, str | None]:
        """``{person_id: name}`` of every person."""
        if not self._has_tables():
            return {}
        return dict(self.db.execute("SELECT id, name FROM people ORDER BY id").fetchall())

    def person_face_ids(self, person_id: int) -> list[int]:
        rows = self.db.execute(
            "SELECT f.id FROM faces f JOIN person_faces pf ON pf.sha256 = f.sha256 AND pf.face_no = f.face_no "
            "WHERE pf.person_id = ? ORDER BY f.id", (person_id,)).fetchall()
        return [r[0] for r in rows]

    def persons_of(self, face_ids) -> dict[int, int]:
        """``{face_id: person_id}`` for the given faces that belong to someone."""
        ids = [int(i) for i in face_ids]
        if not ids or not self._has_tables():
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT f.id, pf.person_id FROM faces f JOIN person_faces pf "
            f"ON pf.sha256 = f.sha256 AND pf.face_no = f.face_no WHERE f.id IN ({marks})", ids).fetchall()
        return dict(rows)

    def face_keys(self, face_ids) -> dict[int, tuple[str, int]]:
        """``{face_id: (sha256, face_no)}``; raises EmbedkitError naming ids that are not in the index."""
        ids = [int(i) for i in face_ids]
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT id, sha256, face_no FROM faces WHERE id IN ({marks})", ids).fetchall()
        found = {r[0]: (r[1], r[2]) for r in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise EmbedkitError(f"no face with id {', '.join(map(str, missing))} in {self.store.path.parent}")
        return found

    def rejections(self) -> set[tuple[str, int, int]]:
        if not self._has_tables():
            return set()
        return set(self.db.execute("SELECT sha256, face_no, person_id FROM rejections").fetchall())

    def resolve(self, ref) -> int:
        """A person id from an id or a name; raises EmbedkitError if there is no such person."""
        people = self.people()
        text = str(ref).strip()
        if text.isdigit() and int(text) in people:
            return int(text)
        for pid, name in people.items():
            if name is not None and name == text:
                return pid
        folded = [pid for pid, name in people.items() if name is not None and name.casefold() == text.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise EmbedkitError(f"no person {text!r} in {self.store.path.parent} (give a person id or name; "
                            f"see `embedkit people`)")

    # -- writing (inside :meth:`write`) -----------------------------------------------------
    def new_person(self, name: str | None = None) -> int:
        return self.db.execute("INSERT INTO people(name, created) VALUES (?, ?)", (name, time.time())).lastrowid

    def set_name(self, person_id: int, name: str | None) -> None:
        try:
            self.db.execute("UPDATE people SET name = ? WHERE id = ?", (name, person_id))
        except sqlite3.IntegrityError:
            raise EmbedkitError(f"another person is already named {name!r}; merge them instead") from None

    def assign(self, keys, person_id: int, pinned: bool) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO person_faces(sha256, face_no, person_id, pinned) VALUES (?, ?, ?, ?)",
            [(sha, no, person_id, int(pinned)) for sha, no in keys])

    def unassign(self, keys) -> None:
        self.db.executemany("DELETE FROM person_faces WHERE sha256 = ? AND face_no = ?", list(keys))

    def reject(self, keys, person_id: int) -> None:
        self.db.executemany("INSERT OR IGNORE INTO rejections(sha256, face_no, person_id) VALUES (?, ?, ?)",
                            [(sha, no, person_id) for sha, no in keys])

    def move_person(self, source: int, target: int) -> None:
        """Every face of ``source`` (and what was rejected from it) now belongs to ``target``; ``source`` goes."""
        self.db.execute("UPDATE person_faces SET person_id = ? WHERE person_id = ?", (target, source))
        self.db.execute("UPDATE OR IGNORE rejections SET person_id = ? WHERE person_id = ?", (target, source))
        self.db.execute("DELETE FROM rejections WHERE person_id = ?", (source,))
        self.db.execute("DELETE FROM people WHERE id = ?", (source,))

    def drop_empty_people(self) -> list[int]:
        """Unnamed people left with no face in the index are removed; named ones stay (their name is user data)."""
        rows = self.db.execute(
            "SELECT p.id FROM people p WHERE p.name IS NULL AND NOT EXISTS ("
            "SELECT 1 FROM person_faces pf JOIN faces f ON pf.sha256 = f.sha256 AND pf.face_no = f.face_no "
            "WHERE pf.person_id = p.id)").fetchall()
        ids = [r[0] for r in rows]
        self.db.executemany("DELETE FROM person_faces WHERE person_id = ?", [(i,) for i in ids])
        self.db.executemany("DELETE FROM people WHERE id = ?", [(i,) for i in ids])
        return ids


class _Transaction:
    def __init__(self, store: MetadataStore):
        self.store = store

    def __enter__(self):
        self.store.begin_write()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.store.commit()
        else:
            self.store.rollback()
        return False
