"""Fixtures for the robustness tests: tiny saved models, the folder of bad
inputs, and ways to run the ``embedkit`` command in-process and as a real
process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest

from .bad_inputs import deny_reads, make_bad_folder, reads_are_denied, unreadable_paths

CLI_WRAPPER = Path(__file__).with_name("cli_wrapper.py")
REPO = Path(__file__).resolve().parents[2]


def _save_model(folder: Path, seed: int, head_units=()) -> Path:
    import keras

    from embedkit.encoder import Encoder

    keras.utils.set_random_seed(seed)
    Encoder.from_backbone("simple", weights="random", input_size=32, head_units=head_units).save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A saved 32px random ``simple`` encoder (128-d): fast, and the same model on every run."""
    return _save_model(tmp_path_factory.mktemp("models") / "tiny", seed=1)


@pytest.fixture(scope="session")
def other_model(tmp_path_factory) -> Path:
    """Another 128-d model (other weights, so another model id)."""
    return _save_model(tmp_path_factory.mktemp("models") / "other", seed=2)


@pytest.fixture(scope="session")
def wide_model(tmp_path_factory) -> Path:
    """A model with another embedding size (64-d)."""
    return _save_model(tmp_path_factory.mktemp("models") / "wide", seed=3, head_units=(64,))


@pytest.fixture(scope="session")
def bad_cases(tmp_path_factory, lfw_dir, att_dir):
    """Every bad and awkward input, in one folder (do not modify it in a test)."""
    return make_bad_folder(tmp_path_factory.mktemp("bad-inputs") / "photos", lfw_dir, att_dir)


def simulated_denials(cases) -> list[str]:
    """Unreadable files this process can read anyway (as root): their reads are denied by simulation."""
    return [p for p in unreadable_paths(cases) if not reads_are_denied(Path(p))]


def run_cli(args, cases=None):
    """``embedkit ARGS`` in this process (click's CliRunner); stdout and stderr kept apart."""
    from click.testing import CliRunner

    from embedkit.cli import main

    guard = deny_reads(simulated_denials(cases)) if cases else nullcontext()
    with guard:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_process(args, cases=None, slow_flush: float = 0.0, **popen):
    """Start ``embedkit ARGS`` as its own process (see cli_wrapper.py); returns the Popen."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    if cases:
        env["EMBEDKIT_TEST_DENY_READS"] = os.pathsep.join(simulated_denials(cases))
    if slow_flush:
        env["EMBEDKIT_TEST_SLOW_FLUSH"] = str(slow_flush)
    return subprocess.Popen([sys.executable, str(CLI_WRAPPER), *[str(a) for a in args]], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def folder_hashes(folder: Path) -> dict[str, str]:
    """Content hash of every file in an index folder (SQLite side files and the lock aside)."""
    if not folder.exists():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith(("-wal", "-shm", ".lock"))}


def faces_per_file(index_dir: Path) -> dict[str, int]:
    """How many faces the index holds for each file path (read straight from SQLite, read-only)."""
    db = sqlite3.connect(f"file:{index_dir / 'metadata.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT files.path, contents.n_faces FROM files JOIN contents USING(sha256)").fetchall()
    finally:
        db.close()
    return dict(rows)


def stderr_lines(text: str) -> list[str]:
    """Non-blank stderr lines (progress-bar redraws split on carriage returns)."""
    return [line.strip() for part in text.splitlines() for line in part.split("\r") if line.strip()]


# -- a small index of real photos -------------------------------------------------------------------

N_PEOPLE = 2  # 20 AT&T photos


@pytest.fixture
def small_index(att_dir, tiny_model, tmp_path):
    """20 AT&T photos indexed without detection: (photos, index_dir)."""
    photos, index_dir = tmp_path / "photos", tmp_path / "index"
    for n in range(1, N_PEOPLE + 1):
        shutil.copytree(att_dir / f"s{n}", photos / f"s{n}")
    result = run_cli(index_args(photos, index_dir, tiny_model))
    assert result.exit_code == 0, result.stderr
    return photos, index_dir


def index_args(photos, index_dir, model, *extra):
    return ["index", photos, "--index", index_dir, "--model", model, "--no-detect", "--json", *extra]


def verify_index(index_dir, *extra):
    """``(exit code, JSON result)`` of ``embedkit index --verify``."""
    result = run_cli(["index", "--verify", "--index", index_dir, "--json", *extra])
    return result.exit_code, json.loads(result.stdout)


def vector_files(index_dir: Path) -> list[Path]:
    return sorted(index_dir.glob("vectors-*.faiss"))


def assert_refused(result, *words):
    """Exit code not 0 and exactly one stderr line, holding each of ``words``."""
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
