"""A disk that fills up during ``index``: one line, exit 1, nothing committed
lost, and the next run (with room again) finishes the work.

Two ways to fill it: a file-size limit (``ulimit -f``: writes past it fail
with EFBIG), which works anywhere, and a tiny tmpfs (ENOSPC), which needs
the rights to mount one in a private namespace.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from .conftest import CLI_WRAPPER, N_PEOPLE, REPO, faces_per_file, index_args, run_cli, run_process, verify_index

MORE_PEOPLE = range(3, 7)  # 40 more photos to index


def _add_people(photos, att_dir):
    for n in MORE_PEOPLE:
        shutil.copytree(att_dir / f"s{n}", photos / f"s{n}")


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write (EFBIG) instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _assert_one_clear_line(stderr: str):
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "cannot write the index" in lines[0] and "Traceback" not in stderr


def _assert_resumes(photos, index_dir, model, before: dict):
    after = faces_per_file(index_dir)
    assert all(after.get(path) == n for path, n in before.items())  # nothing committed was lost
    report = json.loads(run_cli(index_args(photos, index_dir, model)).stdout)
    assert report["total_files"] == 10 * (N_PEOPLE + len(MORE_PEOPLE))
    assert report["total_faces"] == report["total_files"]
    code, result = verify_index(index_dir)
    assert code == 0 and result["ok"] and not result["notes"]


def test_file_size_limit_during_index(small_index, tiny_model, att_dir):
    photos, index_dir = small_index
    _add_people(photos, att_dir)
    before = faces_per_file(index_dir)
    limit = (index_dir / "metadata.sqlite").stat().st_size + 8192
    process = run_process(index_args(photos, index_dir, tiny_model, "--batch-size", "4"),
                          preexec_fn=_limit_file_size(limit))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    _assert_one_clear_line(stderr)
    _assert_resumes(photos, index_dir, tiny_model, before)


FULL_DISK = """
set -e
mount -t tmpfs -o size={size} tmpfs "{disk}"
cp -a "{index}" "{disk}/index"
set +e
"{python}" "{wrapper}" index "{photos}" --index "{disk}/index" --model "{model}" --no-detect --batch-size 4 --json >/dev/null 2>"{err}"
echo $? > "{code}"
set -e
rm -rf "{index}" && cp -a "{disk}/index" "{index}"
"""


def test_disk_full_during_index(small_index, tiny_model, att_dir, tmp_path):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs unshare and mount rights)")
    photos, index_dir = small_index
    _add_people(photos, att_dir)
    before = faces_per_file(index_dir)
    used = sum(p.stat().st_size for p in index_dir.iterdir())
    disk, err, code = tmp_path / "disk", tmp_path / "stderr.txt", tmp_path / "code.txt"
    disk.mkdir()
    script = FULL_DISK.format(size=used + 48 * 1024, disk=disk, index=index_dir, python=sys.executable,
                              wrapper=CLI_WRAPPER, photos=photos, model=tiny_model, err=err, code=code)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert code.read_text().strip() == "1", err.read_text()
    _assert_one_clear_line(err.read_text())
    _assert_resumes(photos, index_dir, tiny_model, before)
