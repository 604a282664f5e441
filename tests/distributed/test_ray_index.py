"""``FaceIndex.update`` through Ray actors: the same index as one process makes,
a killed worker retried, a killed driver resumed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedkit.errors import EmbedkitError
from embedkit.index import FaceIndex

from .conftest import SOURCE

pytestmark = pytest.mark.slow


def contents(index_dir: Path) -> tuple[dict, dict]:
    """``({path: (sha256, label)}, {(sha256, face_no): (box, score, vector)})`` read straight from SQLite."""
    db = sqlite3.connect(f"file:{index_dir / 'metadata.sqlite'}?mode=ro", uri=True)
    try:
        files = {path: (sha, label) for path, sha, label in db.execute("SELECT path, sha256, label FROM files")}
        faces = {}
        for sha, face_no, x, y, w, h, score, blob in db.execute(
                "SELECT sha256, face_no, x, y, w, h, score, vector FROM faces"):
            assert (sha, face_no) not in faces, f"face {face_no} of {sha} stored twice"
            faces[(sha, face_no)] = ((x, y, w, h), score, np.frombuffer(blob, np.float32))
    finally:
        db.close()
    return files, faces


def assert_same_index(built: Path, reference: Path) -> None:
    files, faces = contents(built)
    want_files, want_faces = contents(reference)
    assert files == want_files
    assert faces.keys() == want_faces.keys()
    for key, (box, score, vector) in want_faces.items():
        got_box, got_score, got_vector = faces[key]
        np.testing.assert_allclose(got_box, box, atol=1e-4)
        assert got_score == pytest.approx(score, abs=1e-4)
        np.testing.assert_allclose(got_vector, vector, atol=1e-5)
    with FaceIndex.open(built) as index:
        assert index.verify()["ok"]


def test_ray_index_matches_single_process(ray_embedder, pipeline, photos, reference, tmp_path):
    with FaceIndex.create(tmp_path / "index") as index:
        report = index.update(photos, pipeline, labels=True, source=SOURCE, embedder=ray_embedder)
    assert report.embedded_files == 100 and not report.errors
    _, faces = contents(reference)
    assert len(faces) > 100  # LFW photos hold more than one face: boxes from real detection are compared
    assert_same_index(tmp_path / "index", reference)

    # A second run through Ray skips everything, as a local run does.
    with FaceIndex.open(tmp_path / "index") as index:
        again = index.update(photos, pipeline, labels=True, embedder=ray_embedder)
    assert again.unchanged == 100 and again.embedded_files == 0


def test_killed_worker_is_retried(ray_embedder, pipeline, photos, reference, tmp_path):
    before = ray_embedder.worker_pids()
    done = []

    def kill_a_worker(path):
        done.append(path)
        if len(done) == 10:  # chunks of this and the other worker are in flight
            os.kill(before[0], signal.SIGKILL)

    with FaceIndex.create(tmp_path / "index") as index:
        report = index.update(photos, pipeline, labels=True, source=SOURCE, embedder=ray_embedder,
                              commit_every=8, progress=kill_a_worker)
    assert report.embedded_files == 100 and not report.errors
    after = ray_embedder.worker_pids()
    assert before[0] not in after and before[1] in after  # the killed actor was restarted
    assert_same_index(tmp_path / "index", reference)


def _committed_files(index_dir: Path) -> int:
    """Files in the last committed state, as any reader sees them (0 before the index exists)."""
    try:
        with FaceIndex.open(index_dir) as index:
            return index.stats()["files"]
    except EmbedkitError:
        return 0


def test_killed_driver_resumes(ray_runtime, ray_embedder, pipeline, photos, reference, tmp_path):
    index_dir = tmp_path / "index"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH", "")]))
    # The driver joins the session's Ray runtime (the ADDRESS form of --ray) with one actor of its own.
    args = [sys.executable, "-c", "from embedkit.cli import main; main(prog_name='embedkit')", "index", str(photos), "--index", str(index_dir), "--labels",
            "--backbone", "simple", "--weights", "random", "--batch-size", "16",
            "--ray", ray_runtime, "--ray-workers", "1"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while _committed_files(index_dir) == 0:
            assert proc.poll() is None, f"index run ended early ({proc.returncode}): {proc.stderr.read()}"
            assert time.time() < deadline, "timed out waiting for the first commit"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = _committed_files(index_dir)
    assert 0 < committed < 100, "the driver should die part-way"

    with FaceIndex.open(index_dir) as index:
        report = index.update(photos, pipeline, labels=True, embedder=ray_embedder)
    assert report.unchanged == committed and report.embedded_files == 100 - committed
    assert_same_index(index_dir, reference)
