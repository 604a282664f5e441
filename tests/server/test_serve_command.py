"""`embedkit serve` as a user starts it: a real process, printing how to reach it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from embedkit.cli import main

import httpx  # noqa: E402  (the test extra installs it; never skipped)
import uvicorn  # noqa: E402,F401


def test_missing_index_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--index", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no embedkit index here" in result.output
    assert len(result.output.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serving_beyond_localhost_prints_and_needs_the_access_token(att_index_dir, tmp_path):
    port = _free_port()
    env = {**os.environ, "EMBEDKIT_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
           "EMBEDKIT_HOME": str(tmp_path / "home")}
    cache = tmp_path / "cache" / "weights"
    cache.mkdir(parents=True)
    for name in ("facenet_keras.h5", "facenet_keras.h5.verified.json"):  # the weights the session already has
        source = os.path.expanduser(f"~/.cache/embedkit/weights/{name}")
        if os.path.exists(source):
            (cache / name).symlink_to(source)
    process = subprocess.Popen([sys.executable, "-c", "from embedkit.cli import main; main()", "serve", "--index",
                                str(att_index_dir),
                                "--host", "0.0.0.0", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        deadline = time.time() + 300
        while time.time() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "access=" in line:
                break
        text = "".join(lines)
        token = re.search(r"\?access=(\S+)", text)
        assert token, text
        assert "other machines can reach this server" in text
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):  # uvicorn starts listening just after printing
            try:
                refused = httpx.get(base + "/")
                break
            except httpx.ConnectError:
                time.sleep(0.2)
        assert refused.status_code == 401
        with httpx.Client(base_url=base) as client:
            entry = client.get(f"/?access={token.group(1)}", follow_redirects=True)
            assert entry.status_code == 200  # redirected, the cookie set
            assert "90 faces in 90 photos" in client.get("/").text
    finally:
        process.terminate()
        process.wait(30)
