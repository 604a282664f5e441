"""The index follows the folder, repairs its FAISS cache, refuses other models,
and can be read from a read-only disk."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import (CLI_WRAPPER, N_PEOPLE, REPO, assert_refused as _assert_refused, folder_hashes, index_args as _index,
                       run_cli, vector_files as _vector_files, verify_index as _verify)

def _face_ids(index_dir: Path) -> dict[str, list[int]]:
    db = sqlite3.connect(f"file:{index_dir / 'metadata.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT files.path, faces.id FROM files JOIN faces USING(sha256)").fetchall()
    db.close()
    ids: dict[str, list[int]] = {}
    for path, face_id in rows:
        ids.setdefault(path, []).append(face_id)
    return ids


# -- following the folder -------------------------------------------------------------------------

def test_moved_photo_is_not_embedded_again_and_deleted_photo_loses_its_faces(small_index, tiny_model):
    photos, index_dir = small_index
    before = _face_ids(index_dir)
    moved_from, moved_to = photos / "s1" / "1.pgm", photos / "elsewhere" / "renamed 1.pgm"
    moved_to.parent.mkdir()
    os.replace(moved_from, moved_to)
    (photos / "s2" / "5.pgm").unlink()
    report = json.loads(run_cli(_index(photos, index_dir, tiny_model)).stdout)
    assert report["embedded_files"] == 0 and report["reused_files"] == 1
    assert report["removed_files"] == 2 and report["faces_removed"] == 1
    assert report["total_files"] == report["total_faces"] == 10 * N_PEOPLE - 1
    after = _face_ids(index_dir)
    assert after[str(moved_to)] == before[str(moved_from)]  # the same stored face, not a new one
    assert str(photos / "s2" / "5.pgm") not in after and str(moved_from) not in after
    query = run_cli(["query", moved_to, "--index", index_dir, "--json", "-k", "1"])
    assert json.loads(query.stdout)["results"][0]["faces"][0]["matches"][0]["path"] == str(moved_to)
    assert _verify(index_dir)[1]["ok"]


def test_photo_changed_in_place_replaces_its_faces(small_index, tiny_model, att_dir):
    photos, index_dir = small_index
    target = photos / "s1" / "2.pgm"
    old_ids = _face_ids(index_dir)[str(target)]
    shutil.copyfile(att_dir / "s30" / "1.pgm", target)
    report = json.loads(run_cli(_index(photos, index_dir, tiny_model)).stdout)
    assert report["embedded_files"] == 1 and report["faces_added"] == 1 and report["faces_removed"] == 1
    assert report["total_faces"] == 10 * N_PEOPLE
    assert _face_ids(index_dir)[str(target)] != old_ids
    code, result = _verify(index_dir)
    assert code == 0 and result["ok"], result


# -- the FAISS file is a cache of the store ---------------------------------------------------------

def test_deleted_faiss_file_is_noted_searched_around_and_repaired(small_index, tiny_model):
    photos, index_dir = small_index
    (vector_file,) = _vector_files(index_dir)
    vector_file.unlink()
    query = run_cli(["query", photos / "s1" / "3.pgm", "--index", index_dir, "--json", "-k", "1"])
    assert query.exit_code == 0 and json.loads(query.stdout)["results"][0]["faces"][0]["matches"][0]["score"] > 0.999
    code, result = _verify(index_dir)
    assert code == 0 and result["ok"] and result["notes"]
    code, result = _verify(index_dir, "--repair")
    assert code == 0 and result["repaired"] and result["after"]["ok"] and not result["after"]["notes"]
    assert len(_vector_files(index_dir)) == 1


def test_corrupted_faiss_file_is_reported_and_repaired(small_index, tiny_model):
    photos, index_dir = small_index
    (vector_file,) = _vector_files(index_dir)
    vector_file.write_bytes(b"\x00garbage" * 100)
    query = run_cli(["query", photos / "s2" / "3.pgm", "--index", index_dir, "--json", "-k", "1"])
    assert query.exit_code == 0 and json.loads(query.stdout)["results"][0]["faces"][0]["matches"][0]["score"] > 0.999
    code, result = _verify(index_dir)
    assert code == 1 and not result["ok"] and "checksum differs" in result["problems"][0]
    code, result = _verify(index_dir, "--repair")
    assert code == 0 and result["after"]["ok"]


def test_corrupted_faiss_file_is_rebuilt_by_the_next_update(small_index, tiny_model):
    photos, index_dir = small_index
    (vector_file,) = _vector_files(index_dir)
    vector_file.write_bytes(b"not faiss")
    report = json.loads(run_cli(_index(photos, index_dir, tiny_model)).stdout)
    assert report["unchanged"] == 10 * N_PEOPLE and report["embedded_files"] == 0
    code, result = _verify(index_dir)
    assert code == 0 and result["ok"] and not result["notes"]


def test_corrupted_metadata_is_a_clear_error(small_index, tiny_model):
    photos, index_dir = small_index
    (index_dir / "metadata.sqlite").write_bytes(b"this is not a database" * 100)
    for args in (["query", photos / "s1" / "1.pgm", "--index", index_dir], _index(photos, index_dir, tiny_model),
                 ["index", "--verify", "--index", index_dir]):
        result = run_cli(args)
        assert result.exit_code == 1 and "not a readable index database" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


# -- a read-only reader ----------------------------------------------------------------------------

READER = """
import json, sys
import numpy as np
from embedkit.index import FaceIndex
with FaceIndex.open(sys.argv[1]) as index:
    ids, vectors = index.store.all_vectors(index.dim)
    best = index.search(vectors[:1], k=1)[0][0]
    print(json.dumps({"faces": index.stats()["faces"], "best": best["face_id"], "want": int(ids[0]),
                      "ok": index.verify()["ok"], "tf": "tensorflow" in sys.modules}))
"""


def _read_only(index_dir: Path, command: str) -> subprocess.CompletedProcess:
    """Run ``command`` with ``index_dir`` mounted read-only (a private mount namespace)."""
    script = f'mount --bind -o ro "{index_dir}" "{index_dir}" && {command}'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def read_only_mounts(tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    if shutil.which("unshare") is None or _read_only(probe, "true").returncode != 0:
        pytest.skip("cannot make a read-only mount here (needs unshare and mount rights)")


@pytest.mark.parametrize("side_files", [False, True], ids=["closed", "writer-open"])
def test_read_only_reader(small_index, read_only_mounts, side_files):
    """Searching works on a read-only disk, whether or not SQLite's -wal/-shm files and the lock are there."""
    _, index_dir = small_index
    assert (index_dir / "writer.lock").exists()
    keep = sqlite3.connect(index_dir / "metadata.sqlite") if side_files else None
    try:
        if keep is not None:
            keep.execute("SELECT COUNT(*) FROM faces").fetchone()
            assert (index_dir / "metadata.sqlite-shm").exists()
        before = folder_hashes(index_dir)
        quoted = READER.replace("'", "'\"'\"'")
        result = _read_only(index_dir, f"'{sys.executable}' -c '{quoted}' '{index_dir}'")
    finally:
        if keep is not None:
            keep.close()
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["faces"] == 10 * N_PEOPLE and answer["best"] == answer["want"] and answer["ok"]
    assert not answer["tf"]  # reading an index needs no model
    assert folder_hashes(index_dir) == before


def test_read_only_index_cannot_be_repaired_and_says_so(small_index, read_only_mounts):
    _, index_dir = small_index
    for vector_file in index_dir.glob("vectors-*.faiss"):
        vector_file.unlink()  # something for --repair to do
    before = folder_hashes(index_dir)
    command = f"'{sys.executable}' '{CLI_WRAPPER}' index --verify --repair --index '{index_dir}'"
    result = _read_only(index_dir, command)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0], result.stderr
    assert folder_hashes(index_dir) == before


# -- other models, other settings, broken model folders -------------------------------------------

def test_other_model_or_embedding_size_or_face_settings_are_refused(small_index, tiny_model, other_model,
                                                                     wide_model):
    photos, index_dir = small_index
    (photos / "s1" / "new.pgm").write_bytes((photos / "s2" / "1.pgm").read_bytes())  # work it would do
    before = folder_hashes(index_dir)
    image = photos / "s1" / "1.pgm"
    _assert_refused(run_cli(_index(photos, index_dir, other_model)), "index was built with model")
    _assert_refused(run_cli(_index(photos, index_dir, wide_model)), "128-d", "64-d")
    _assert_refused(run_cli(_index(photos, index_dir, tiny_model, "--center-crop", "0.8")), "face settings")
    _assert_refused(run_cli(["query", image, "--index", index_dir, "--model", other_model]), "index was built with")
    _assert_refused(run_cli(["query", image, "--index", index_dir, "--model", wide_model]), "64-d")
    assert folder_hashes(index_dir) == before


def test_missing_or_foreign_model_folder_and_unknown_backbone(small_index, tiny_model, tmp_path):
    photos, index_dir = small_index
    image = photos / "s1" / "1.pgm"
    old = tmp_path / "old-model"
    shutil.copytree(tiny_model, old)
    config = json.loads((old / "embedkit_model.json").read_text())
    config["format"] = "embedkit-model/0"
    (old / "embedkit_model.json").write_text(json.dumps(config))
    new_index = tmp_path / "new-index"
    before = folder_hashes(index_dir)
    for model_args, words in ((["--model", tmp_path / "missing"], ["missing", "not found"]),
                              (["--model", old], [str(old), "format"]),
                              (["--backbone", "nosuch"], ["'nosuch'", "facenet", "simple"])):
        for target in (index_dir, new_index):
            _assert_refused(run_cli(["index", photos, "--index", target, *model_args]), *words)
        _assert_refused(run_cli(["query", image, "--index", index_dir, *model_args]), *words)
        _assert_refused(run_cli(["compare", image, image, *model_args]), *words)
    assert folder_hashes(index_dir) == before
    assert not new_index.exists()
