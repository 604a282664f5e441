"""``embedkit index --ray`` where Ray is not installed: one line saying how to get it."""

from __future__ import annotations

import sys

from click.testing import CliRunner

from embedkit.cli import main


def test_ray_missing_says_how_to_get_it(att_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: `import ray` fails
    result = CliRunner().invoke(main, ["index", str(att_dir / "s1"), "--index", str(tmp_path / "index"),
                                       "--backbone", "simple", "--weights", "random", "--ray"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --ray needs Ray, which is not installed: pip install 'embedkit[ray]'"]
    assert not (tmp_path / "index").exists()  # nothing was created
