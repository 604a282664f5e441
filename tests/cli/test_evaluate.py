"""`embedkit evaluate`: pairs files, identity folders, groups, plots and JSON."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from embedkit.cli import main

TINY = ["--backbone", "simple", "--weights", "random", "--no-detect"]


@pytest.fixture
def att_subset(att_dir, tmp_path):
    root = tmp_path / "att"
    for i in range(1, 7):
        shutil.copytree(att_dir / f"s{i}", root / f"s{i}")
    return root


def run(args):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result


def test_pairs_file_json_and_plot(lfw_dir, tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t2\nAaron_Peirsol\t1\t2\nAaron_Peirsol\t3\t4\n"
                     "Aaron_Peirsol\t1\tAkhmed_Zakayev\t1\nAbel_Pacheco\t1\tAkhmed_Zakayev\t2\n"
                     "Abel_Pacheco\t1\t4\nAkhmed_Zakayev\t1\t3\n"
                     "Abel_Pacheco\t2\tAaron_Peirsol\t2\nAkhmed_Zakayev\t3\tAaron_Peirsol\t4\n")
    plot = tmp_path / "roc.png"
    result = run(["evaluate", "--pairs", str(pairs), "--images", str(lfw_dir), "--plot", str(plot),
                  "--json", *TINY])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("accuracy", "accuracy_std", "auc", "eer", "threshold", "tar_at_far_1e-2", "tar_at_far_1e-3",
                "n_missing", "model_id"):
        assert key in data
    assert data["n_pairs"] == 8 and data["n_folds"] == 2
    assert plot.read_bytes()[:4] == b"\x89PNG"

    quick = run(["evaluate", "--pairs", str(pairs), "--images", str(lfw_dir), "--folds", "1", "--json", *TINY])
    assert json.loads(quick.output)["n_pairs"] == 4


def test_identity_folder_text_and_json(att_subset):
    text = run(["evaluate", "--data", str(att_subset), "--n-pairs", "60", *TINY])
    assert text.exit_code == 0, text.output
    assert "accuracy:" in text.output and "rank-1" in text.output

    result = run(["evaluate", "--data", str(att_subset), "--n-pairs", "60", "-k", "1", "-k", "3", "--json", *TINY])
    data = json.loads(result.output)
    assert {"accuracy", "accuracy_std", "auc", "eer", "threshold", "rank1"} <= set(data)
    assert set(data["retrieval"]) >= {"recall@1", "recall@3"}
    assert data["images"]["n_people"] == 6


def test_utkface_groups(faces_dir, tmp_path):
    root = tmp_path / "utk"
    for race in ("black", "indian"):
        folder = root / "males" / race
        folder.mkdir(parents=True)
        for path in sorted((faces_dir / "utkface" / "males" / race).iterdir())[:5]:
            shutil.copy(path, folder / path.name)
    result = run(["evaluate", "--data", str(root), "--one-photo", "--groups", "utkface", "--n-pairs", "40",
                  "--threshold", "0.5", "--json", *TINY])
    assert result.exit_code == 0, result.output
    groups = json.loads(result.output)["groups"]
    assert set(groups["race"]["groups"]) <= {"black", "indian", "mixed"}
    assert groups["race"]["threshold"] == 0.5


def test_needs_exactly_one_source(att_subset, lfw_dir):
    result = CliRunner().invoke(main, ["evaluate", *TINY])
    assert result.exit_code == 2 and "either --pairs" in result.output
    result = CliRunner().invoke(main, ["evaluate", "--pairs", str(lfw_dir.parent / "pairs.txt"), *TINY])
    assert result.exit_code == 2 and "--images" in result.output


def test_unreadable_photos_get_one_line_each_and_are_counted(att_subset):
    (att_subset / "s1" / "broken.jpg").write_text("not an image")
    (att_subset / "s2" / "empty.pgm").write_bytes(b"")
    text = run(["evaluate", "--data", str(att_subset), "--n-pairs", "60", *TINY])
    assert text.exit_code == 0, text.output
    lines = [line for line in text.stderr.splitlines() if line.startswith("skipped ")]
    assert len(lines) == 2
    assert any("broken.jpg: not an image" in line for line in lines)
    assert any("empty.pgm: empty file" in line for line in lines)
    data = json.loads(run(["evaluate", "--data", str(att_subset), "--n-pairs", "60", "--json", *TINY]).stdout)
    assert len(data["errors"]) == 2
