"""Killing ``embedkit index`` (SIGKILL), querying while it runs, and two writers at once.

The index run under test is a real process (cli_wrapper.py), slowed down
before each embedding batch so that it can be caught between its commits.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from embedkit.index import FaceIndex

from .conftest import run_cli, run_process

ATT_PEOPLE = 15  # 150 photos


def _copy_att(att_dir: Path, dest: Path, people: range) -> Path:
    for n in people:
        shutil.copytree(att_dir / f"s{n}", dest / f"s{n}")
    return dest


def _committed_files(index_dir: Path) -> int:
    """Files in the last committed state, read as any other reader would."""
    try:
        db = sqlite3.connect(f"file:{index_dir / 'metadata.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _wait_for(condition, proc, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"index process ended early ({proc.returncode}): {proc.stderr.read()}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the index process")
        time.sleep(0.05)


def _index_args(folder, index_dir, model, *extra):
    return ["index", folder, "--index", index_dir, "--model", model, "--no-detect", "--batch-size", "16", *extra]


@pytest.mark.slow
def test_kill_during_index_then_resume(att_dir, tiny_model, tmp_path):
    photos, index_dir = tmp_path / "photos", tmp_path / "index"
    _copy_att(att_dir, photos, range(1, 4))
    first = run_cli(_index_args(photos, index_dir, tiny_model, "--json"))
    assert first.exit_code == 0, first.stderr
    before = json.loads(first.stdout)["total_files"]
    assert before == 30
    _copy_att(att_dir, photos, range(4, ATT_PEOPLE + 1))
    total = 10 * ATT_PEOPLE

    proc = run_process(_index_args(photos, index_dir, tiny_model, "--json"), slow_flush=0.6)
    try:
        _wait_for(lambda: _committed_files(index_dir) > before, proc)
        # A query while the index run is under way: the last committed state, no error.
        during = run_cli(["query", photos / "s1" / "1.pgm", "--index", index_dir, "--json", "-k", "3"])
        assert during.exit_code == 0, during.stderr
        best = json.loads(during.stdout)["results"][0]["faces"][0]["matches"][0]
        assert best["path"] == str(photos / "s1" / "1.pgm") and best["score"] > 0.999
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    at_kill = _committed_files(index_dir)
    assert before < at_kill < total, "the kill must land between the first commit and the end"

    # The index loads, agrees with itself, and can be searched.
    with FaceIndex.open(index_dir) as index:
        stats = index.stats()
    assert stats["files"] == stats["faces"] == at_kill
    verify = run_cli(["index", "--verify", "--index", index_dir, "--json"])
    assert verify.exit_code == 0, verify.stdout
    assert json.loads(verify.stdout)["ok"]
    after_kill = run_cli(["query", photos / "s2" / "3.pgm", "--index", index_dir, "--json", "-k", "1"])
    assert after_kill.exit_code == 0 and json.loads(after_kill.stdout)["results"][0]["faces"][0]["matches"][0]["score"] > 0.999

    # Re-running resumes: only the files not yet committed are embedded.
    resume = run_cli(_index_args(photos, index_dir, tiny_model, "--json"))
    assert resume.exit_code == 0, resume.stderr
    report = json.loads(resume.stdout)
    assert report["unchanged"] == at_kill
    assert report["embedded_files"] == total - at_kill
    assert report["total_files"] == report["total_faces"] == total
    assert report["n_errors"] == 0
    verify = run_cli(["index", "--verify", "--index", index_dir, "--json"])
    result = json.loads(verify.stdout)
    assert verify.exit_code == 0 and result["ok"] and not result["notes"], result
    print(f"kill-and-resume: {before} files before, {at_kill} committed at SIGKILL, "
          f"{report['embedded_files']} embedded on resume, {report['total_files']} files / "
          f"{report['total_faces']} faces at the end (folder: {total})")


@pytest.mark.slow
def test_two_index_writers_are_serialised(att_dir, tiny_model, tmp_path, caplog):
    first, second, index_dir = tmp_path / "first", tmp_path / "second", tmp_path / "index"
    _copy_att(att_dir, first, range(1, 11))
    _copy_att(att_dir, second, range(11, 14))
    proc = run_process(_index_args(first, index_dir, tiny_model, "--json"), slow_flush=0.3)
    try:
        _wait_for(lambda: _committed_files(index_dir) > 0, proc)  # the first writer holds the lock
        with caplog.at_level(logging.WARNING, logger="embedkit.index"):
            result = run_cli(_index_args(second, index_dir, tiny_model, "--json"))
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert result.exit_code == 0, result.stderr
    assert any("waiting" in r.getMessage() for r in caplog.records)
    assert json.loads(stdout)["embedded_files"] == 100
    report = json.loads(result.stdout)
    assert report["embedded_files"] == 30 and report["total_files"] == 130
    # Serialised, not interleaved: every file of the second run was written after all of the first's.
    db = sqlite3.connect(index_dir / "metadata.sqlite")
    last_first = db.execute("SELECT MAX(indexed_at) FROM files WHERE path LIKE ?", (f"{first}/%",)).fetchone()[0]
    first_second = db.execute("SELECT MIN(indexed_at) FROM files WHERE path LIKE ?", (f"{second}/%",)).fetchone()[0]
    db.close()
    assert last_first < first_second
    verify = run_cli(["index", "--verify", "--index", index_dir, "--json"])
    assert verify.exit_code == 0 and json.loads(verify.stdout)["ok"]
