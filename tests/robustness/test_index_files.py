"""FAISS files that are not the ones written for their generation, bad or
damaged settings, and damaged values in the index database.

Each case asserts the exact outcome: a query never returns a stranger at
1.0, verify names the problem, repair (or the next update) rebuilds from
the store, and what the store holds is never lost.
"""

from __future__ import annotations

import json
import sqlite3

import faiss
import numpy as np
import pytest

from .conftest import (N_PEOPLE, assert_refused, faces_per_file, folder_hashes, index_args, run_cli, vector_files,
                       verify_index)

DB = "metadata.sqlite"


def _store_vectors(index_dir):
    db = sqlite3.connect(f"file:{index_dir / DB}?mode=ro", uri=True)
    rows = db.execute("SELECT id, vector FROM faces ORDER BY id").fetchall()
    db.close()
    ids = np.array([r[0] for r in rows], np.int64)
    return ids, np.stack([np.frombuffer(r[1], np.float32) for r in rows])


def _sql(index_dir, statement, *args):
    db = sqlite3.connect(index_dir / DB)
    db.execute(statement, args)
    db.commit()
    db.close()


def _top_match(index_dir, image):
    result = run_cli(["query", image, "--index", index_dir, "--json", "-k", "1"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["results"][0]["faces"][0]["matches"][0], result.stderr


def _replace_faiss(index_dir, index):
    (target,) = vector_files(index_dir)
    faiss.write_index(index, str(target))


def _swapped_vectors(index_dir):
    """Right ids, right type and size, but every vector on another person's face."""
    ids, vectors = _store_vectors(index_dir)
    index = faiss.IndexIDMap(faiss.IndexFlatIP(vectors.shape[1]))
    index.add_with_ids(vectors[::-1].copy(), ids)
    return index


def _no_id_map(index_dir):
    _, vectors = _store_vectors(index_dir)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def _wrong_dimension(index_dir):
    ids, vectors = _store_vectors(index_dir)
    index = faiss.IndexIDMap(faiss.IndexFlatIP(64))
    index.add_with_ids(np.ascontiguousarray(vectors[:, :64]), ids)
    return index


def _l2_metric(index_dir):
    ids, vectors = _store_vectors(index_dir)
    index = faiss.IndexIDMap(faiss.IndexFlatL2(vectors.shape[1]))
    index.add_with_ids(vectors, ids)
    return index


FORGED = {"vectors on the wrong faces": _swapped_vectors, "no id map": _no_id_map,
          "wrong dimension": _wrong_dimension, "L2 metric": _l2_metric}


@pytest.mark.parametrize("kind", sorted(FORGED))
@pytest.mark.parametrize("record", ["kept", "forged too"])
def test_a_foreign_faiss_file_is_never_searched(small_index, tiny_model, kind, record, caplog):
    """Query answers from the store (the right face at 1.0, saying so); verify names it; repair rebuilds."""
    photos, index_dir = small_index
    image = photos / "s1" / "1.pgm"
    _replace_faiss(index_dir, FORGED[kind](index_dir))
    if record == "forged too":  # someone who also edits the database's record of the file
        (path,) = vector_files(index_dir)
        import hashlib

        forged = faiss.read_index(str(path))
        data = path.read_bytes()
        db = sqlite3.connect(index_dir / DB)
        stored = json.loads(db.execute("SELECT value FROM info WHERE key='vectors'").fetchone()[0])
        stored.update(sha256=hashlib.sha256(data).hexdigest(), dim=forged.d)
        db.execute("UPDATE info SET value = ? WHERE key = 'vectors'", (json.dumps(stored),))
        db.commit()
        db.close()
    # Whoever can rewrite the database's record can rewrite the stored vectors too: with the
    # record forged, a file of the right type and size is caught by --verify's content check.
    if record == "kept" or kind != "vectors on the wrong faces":
        match, _ = _top_match(index_dir, image)
        assert match["path"] == str(image) and match["score"] > 0.999
        assert "searching the stored vectors exactly" in caplog.text
    code, result = verify_index(index_dir)
    assert code == 1 and not result["ok"] and len(result["problems"]) == 1
    code, result = verify_index(index_dir, "--repair")
    assert code == 0 and result["after"]["ok"]
    assert _top_match(index_dir, image)[0]["path"] == str(image)


def test_a_foreign_faiss_file_is_rebuilt_by_the_next_update_saying_so(small_index, tiny_model, caplog):
    photos, index_dir = small_index
    _replace_faiss(index_dir, _swapped_vectors(index_dir))
    result = run_cli(index_args(photos, index_dir, tiny_model))
    assert result.exit_code == 0 and "rebuilding it from the store" in caplog.text
    assert verify_index(index_dir)[1]["ok"]


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_a_truncated_faiss_file_is_searched_around_and_repaired(small_index, cut):
    photos, index_dir = small_index
    (path,) = vector_files(index_dir)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    image = photos / "s2" / "4.pgm"
    assert _top_match(index_dir, image)[0]["path"] == str(image)
    assert verify_index(index_dir)[0] == 1
    assert verify_index(index_dir, "--repair")[1]["after"]["ok"]


def test_an_old_generation_file_renamed_to_the_current_one_is_refused(small_index, tiny_model, att_dir):
    photos, index_dir = small_index
    (old,) = vector_files(index_dir)
    saved = old.read_bytes()
    (photos / "s1" / "1.pgm").unlink()  # the next generation drops a face
    assert run_cli(index_args(photos, index_dir, tiny_model)).exit_code == 0
    (current,) = vector_files(index_dir)
    current.write_bytes(saved)  # the old file, which still holds the removed face
    code, result = verify_index(index_dir)
    assert code == 1 and "checksum differs" in result["problems"][0]
    match, _ = _top_match(index_dir, att_dir / "s1" / "1.pgm")
    assert match["path"] != str(photos / "s1" / "1.pgm")


# -- settings ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, words", [
    ("--search-params", "garbage", "not name=number"),
    ("--search-params", "efSearch=-1", "whole number"),  # FAISS takes it, then finds nothing
    ("--search-params", "nprobe=0", "whole number"),  # FAISS takes it, then fails every search
    ("--search-params", "nprobe=nan", "not name=number"),
    ("--search-params", "nprobe=4", "nprobe"),  # an IVF parameter on an exact index
    ("--factory", "Garbage", "invalid FAISS factory"),
    ("--factory", "", "invalid FAISS factory"),
])
def test_bad_settings_are_refused_before_anything_is_stored(small_index, tiny_model, tmp_path, option, value, words):
    photos, index_dir = small_index
    (photos / "s1" / "new.pgm").write_bytes((photos / "s2" / "1.pgm").read_bytes())  # work it would do
    before = folder_hashes(index_dir)
    assert_refused(run_cli(index_args(photos, index_dir, tiny_model, option, value)), words)
    assert folder_hashes(index_dir) == before
    new_index = tmp_path / "fresh"
    assert_refused(run_cli(index_args(photos, new_index, tiny_model, option, value)), words)
    assert not new_index.exists()  # no empty index left behind
    assert verify_index(index_dir)[1]["ok"]


def test_an_ivf_index_too_small_to_train_searches_exactly_saying_so(small_index, tiny_model, att_dir, caplog):
    photos, index_dir = small_index
    result = run_cli(index_args(photos, index_dir, tiny_model, "--factory", "IVF64,Flat", "--search-params",
                                "nprobe=8"))
    assert result.exit_code == 0, result.stderr
    assert "cannot be trained on 20 faces" in caplog.text and "searching exactly" in caplog.text
    code, verified = verify_index(index_dir)
    assert code == 0 and verified["ok"] and "cannot be trained" in verified["notes"][0]
    image = photos / "s2" / "7.pgm"
    assert _top_match(index_dir, image)[0]["path"] == str(image)
    # Enough faces later: the factory is trained, and the note goes.
    caplog.clear()
    more = photos / "more"
    more.mkdir()
    for n in range(3, 10):
        for f in (att_dir / f"s{n}").iterdir():
            (more / f"{n}_{f.name}").write_bytes(f.read_bytes())
    result = run_cli(index_args(photos, index_dir, tiny_model))
    assert result.exit_code == 0 and "searching exactly" not in caplog.text
    code, verified = verify_index(index_dir)
    assert code == 0 and verified["ok"] and not verified["notes"] and verified["faces"] == 90
    assert _top_match(index_dir, image)[0]["path"] == str(image)


def test_stored_search_params_faiss_would_take_but_not_search_with(small_index, tiny_model):
    photos, index_dir = small_index
    assert run_cli(index_args(photos, index_dir, tiny_model, "--factory", "HNSW8")).exit_code == 0
    _sql(index_dir, "INSERT OR REPLACE INTO info(key, value) VALUES ('search_params', 'efSearch=0')")
    assert_refused(run_cli(["query", photos / "s1" / "2.pgm", "--index", index_dir]), "efSearch")
    assert verify_index(index_dir)[0] == 1


def test_stored_settings_can_be_replaced_by_a_later_run(small_index, tiny_model):
    photos, index_dir = small_index
    _sql(index_dir, "INSERT OR REPLACE INTO info(key, value) VALUES ('search_params', 'garbage')")
    assert_refused(run_cli(["query", photos / "s1" / "2.pgm", "--index", index_dir]), "garbage")
    code, result = verify_index(index_dir)
    assert code == 1 and "garbage" in result["problems"][0]
    assert_refused(run_cli(index_args(photos, index_dir, tiny_model)), "--search-params")
    result = run_cli(index_args(photos, index_dir, tiny_model, "--search-params", ""))
    assert result.exit_code == 0, result.stderr
    assert verify_index(index_dir)[1]["ok"]
    result = run_cli(index_args(photos, index_dir, tiny_model, "--factory", "HNSW8", "--search-params",
                                "efSearch=32"))
    assert result.exit_code == 0 and verify_index(index_dir)[1]["ok"]
    assert _top_match(index_dir, photos / "s1" / "2.pgm")[0]["path"] == str(photos / "s1" / "2.pgm")


# -- damaged values in the database -----------------------------------------------------------------

DAMAGED_VALUES = {
    "generation not a number": ("UPDATE info SET value = 'seven' WHERE key = 'generation'", "generation"),
    "negative generation": ("UPDATE info SET value = '-3' WHERE key = 'generation'", "generation"),
    "embedding size not a number": ("UPDATE info SET value = 'wide' WHERE key = 'embedding_dim'", "embedding_dim"),
    "embedding size absurd": ("UPDATE info SET value = '99999999999' WHERE key = 'embedding_dim'", "embedding_dim"),
    "face settings unparsable": ("UPDATE info SET value = '{\"detector\": ' WHERE key = 'extractor'", "extractor"),
    "source unparsable": ("UPDATE info SET value = 'not json' WHERE key = 'source'", "source"),
    "vector record unparsable": ("UPDATE info SET value = '[[[' WHERE key = 'vectors'", "vectors"),
    "faces table gone": ("DROP TABLE faces", "faces"),
    "files table gone": ("DROP TABLE files", "files"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_VALUES))
def test_damaged_values_are_one_line_and_nothing_is_lost(small_index, tiny_model, damage):
    photos, index_dir = small_index
    statement, key = DAMAGED_VALUES[damage]
    _sql(index_dir, statement)
    before = folder_hashes(index_dir)
    for args in (index_args(photos, index_dir, tiny_model), ["query", photos / "s1" / "1.pgm", "--index", index_dir],
                 ["index", "--verify", "--index", index_dir], ["index", "--verify", "--repair", "--index", index_dir]):
        result = run_cli(args)
        assert result.exit_code == 1, (args, result.stdout)
        assert_refused(result, key)
    assert folder_hashes(index_dir) == before  # byte-identical: nothing stored lost, nothing "fixed" silently


def test_a_short_or_nan_vector_is_found_and_its_photo_embedded_again(small_index, tiny_model):
    photos, index_dir = small_index
    ids, _ = _store_vectors(index_dir)
    _sql(index_dir, "UPDATE faces SET vector = ? WHERE id = ?", b"\x00" * 10, int(ids[0]))
    _sql(index_dir, "UPDATE faces SET vector = ? WHERE id = ?", np.full(128, np.nan, np.float32).tobytes(), int(ids[1]))
    # The FAISS file is still good: queries go on.
    assert _top_match(index_dir, photos / "s2" / "3.pgm")[0]["path"] == str(photos / "s2" / "3.pgm")
    code, result = verify_index(index_dir)
    assert code == 1 and result["problems"] == ["2 stored vectors are not unit-length 128-d vectors"]
    code, result = verify_index(index_dir, "--repair")
    assert code == 0 and result["after"]["ok"] and result["after"]["faces"] == 10 * N_PEOPLE - 2
    report = json.loads(run_cli(index_args(photos, index_dir, tiny_model)).stdout)
    assert report["embedded_files"] == 2 and report["total_faces"] == 10 * N_PEOPLE
    assert verify_index(index_dir)[1]["ok"]


def test_a_non_numeric_file_size_only_means_the_file_is_checked_again(small_index, tiny_model):
    photos, index_dir = small_index
    _sql(index_dir, "UPDATE files SET size = 'big', mtime_ns = 'yesterday' WHERE rowid = 1")
    report = json.loads(run_cli(index_args(photos, index_dir, tiny_model)).stdout)
    assert report["unchanged"] == 10 * N_PEOPLE - 1 and report["reused_files"] == 1
    assert report["embedded_files"] == 0 and verify_index(index_dir)[1]["ok"]


def test_garbage_wal_leftovers_are_ignored(small_index, tiny_model):
    photos, index_dir = small_index
    faces = faces_per_file(index_dir)
    (index_dir / f"{DB}-wal").write_bytes(b"\x37\x7f\x06\x82" + b"garbage" * 1000)
    (index_dir / f"{DB}-shm").write_bytes(b"\x00" * 100)
    assert _top_match(index_dir, photos / "s1" / "5.pgm")[0]["path"] == str(photos / "s1" / "5.pgm")
    assert verify_index(index_dir)[1]["ok"] and faces_per_file(index_dir) == faces


@pytest.mark.parametrize("trap", ["link to /dev/zero", "huge sparse file"])
def test_a_vector_file_that_would_exhaust_memory_is_not_read(small_index, tiny_model, trap):
    photos, index_dir = small_index
    (path,) = vector_files(index_dir)
    path.unlink()
    if trap == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    else:
        with open(path, "wb") as f:
            f.truncate(4 << 30)  # 4 GiB of nothing, taking no disk
    image = photos / "s1" / "8.pgm"
    assert _top_match(index_dir, image)[0]["path"] == str(image)
    code, result = verify_index(index_dir)
    assert code == (0 if trap.startswith("link") else 1)  # a device is no FAISS file: noted, not read
    report = json.loads(run_cli(index_args(photos, index_dir, tiny_model)).stdout)
    assert report["unchanged"] == 10 * N_PEOPLE
    (path,) = vector_files(index_dir)
    assert path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20
    assert verify_index(index_dir)[1]["ok"]


def test_damaged_face_boxes_and_scores_still_answer_queries(small_index):
    photos, index_dir = small_index
    _sql(index_dir, "UPDATE faces SET x = NULL, w = 'wide', score = X'00ff'")
    match, _ = _top_match(index_dir, photos / "s1" / "6.pgm")
    assert match["path"] == str(photos / "s1" / "6.pgm") and match["box"][0] is None
    assert match["detector_score"] is None


def test_deleted_face_rows_are_found_and_their_photos_embedded_again(small_index, tiny_model):
    photos, index_dir = small_index
    _sql(index_dir, "DELETE FROM faces WHERE id IN (SELECT id FROM faces ORDER BY id LIMIT 3)")
    code, result = verify_index(index_dir)
    assert code == 1 and "3 images are missing some of their faces" in " ".join(result["problems"])
    code, result = verify_index(index_dir, "--repair")
    assert code == 0 and result["after"]["ok"]
    report = json.loads(run_cli(index_args(photos, index_dir, tiny_model)).stdout)
    assert report["embedded_files"] == 3 and report["total_faces"] == 10 * N_PEOPLE
    assert verify_index(index_dir)[1]["ok"]
