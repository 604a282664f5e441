"""`embedkit finetune` through click's CliRunner, on a few real AT&T faces."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from embedkit.cli import main

ATT = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "att"


@pytest.fixture
def data(tmp_path):
    if not ATT.is_dir():
        pytest.skip("AT&T faces not available")
    for person in range(1, 7):
        (tmp_path / "data" / f"s{person}").mkdir(parents=True)
        for k in range(1, 4):
            shutil.copy(ATT / f"s{person}" / f"{k}.pgm", tmp_path / "data" / f"s{person}" / f"{k}.pgm")
    return tmp_path / "data"


def tiny_finetune_args(data, out):
    return ["finetune", "--backbone", "simple", "--data", str(data), "--out", str(out), "--epochs", "1",
            "--input-size", "32", "--no-detect", "--val-people", "2", "--test-people", "2", "--pairs-per-epoch", "64",
            "--eval-pairs", "40", "--json"]


def test_finetune_json(data, tmp_path):
    out = tmp_path / "model"
    result = CliRunner().invoke(main, tiny_finetune_args(data, out))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["out"] == str(out) and report["backbone"] == "simple"
    assert {"accuracy", "auc", "eer", "tar_at_far_1e-3"} <= set(report["after"])
    assert (out / "embedkit_model.json").is_file() and (out / "roc.png").is_file()
    config = json.loads((out / "embedkit_model.json").read_text())
    assert config["metadata"]["finetune"]["detector"] is None
    assert config["threshold"] is not None


def test_bad_options_are_one_line_errors(data, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["finetune", "--backbone", "nope", "--data", str(data), "--out", str(tmp_path / "m")])
    assert result.exit_code == 1 and "unknown backbone 'nope'" in result.output
    result = runner.invoke(main, ["finetune", "--data", str(data), "--out", str(tmp_path / "m"), "--unfreeze", "x"])
    assert result.exit_code == 2 and "number of blocks" in result.output
    result = runner.invoke(main, ["finetune", "--data", str(data), "--out", str(tmp_path / "m"), "--margin", "0"])
    assert result.exit_code == 2 and "margin" in result.output


def test_bad_photos_are_skipped_counted_and_named(data, tmp_path):
    from PIL import Image

    (data / "s1" / "empty.jpg").write_bytes(b"")
    (data / "s2" / "notes.jpg").write_text("not an image")
    Image.new("RGB", (1, 1)).save(data / "s3" / "dot.png")
    out = tmp_path / "model"
    result = CliRunner().invoke(main, tiny_finetune_args(data, out))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert report["n_skipped"] == 3
    assert "empty file" in skipped["empty.jpg"] and "not an image" in skipped["notes.jpg"]
    assert "too small" in skipped["dot.png"]
    assert (out / "embedkit_model.json").is_file()


def test_triplet_loss_from_the_command_line(data, tmp_path):
    out = tmp_path / "triplet"
    result = CliRunner().invoke(main, tiny_finetune_args(data, out) + ["--loss", "triplet", "--faces-per-person", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["loss"] == "triplet"
    assert {"only_before_right", "only_after_right", "p_value", "verdict"} <= set(report["headline"])
    config = json.loads((out / "embedkit_model.json").read_text())["metadata"]["finetune"]
    assert config["loss"] == "triplet" and config["margin"] is None and config["faces_per_person"] == 3
    bad = CliRunner().invoke(main, tiny_finetune_args(data, tmp_path / "x") + ["--loss", "sphereface"])
    assert bad.exit_code != 0 and "sphereface" in bad.output
    # distill needs a shift (its teacher sees the clean face): one line, no traceback.
    bad = CliRunner().invoke(main, tiny_finetune_args(data, tmp_path / "y") + ["--loss", "distill"])
    assert bad.exit_code != 0 and "needs a shift" in bad.output and "Traceback" not in bad.output


def test_shift_and_distill_from_the_command_line(data, tmp_path):
    out = tmp_path / "distill"
    result = CliRunner().invoke(main, tiny_finetune_args(data, out) + ["--shift", "lowres", "--loss", "distill"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["loss"] == "distill"
    config = json.loads((out / "embedkit_model.json").read_text())["metadata"]["finetune"]
    assert config["shift"] == "lowres" and config["loss"] == "distill"
    bad = CliRunner().invoke(main, tiny_finetune_args(data, tmp_path / "z") + ["--shift", "fog"])
    assert bad.exit_code != 0 and "fog" in bad.output


def test_evaluate_scores_the_model_test_people_unless_told(data, tmp_path):
    out = tmp_path / "model"
    assert CliRunner().invoke(main, tiny_finetune_args(data, out)).exit_code == 0
    test_people = json.loads((out / "embedkit_model.json").read_text())["metadata"]["split"]["names"]["test"]
    args = ["evaluate", "--data", str(data), "--model", str(out), "--no-detect", "--n-pairs", "30", "--json"]
    held_out = CliRunner().invoke(main, args)
    assert held_out.exit_code == 0, held_out.output
    report = json.loads(held_out.stdout)
    assert report["people_scored"] == "model test people"
    assert report["images"]["n_people"] == len(test_people) == 2
    assert "held-out test people" in held_out.stderr
    everyone = CliRunner().invoke(main, args + ["--all-people"])
    assert everyone.exit_code == 0
    report = json.loads(everyone.stdout)
    assert report["images"]["n_people"] == 6 and "WARNING" in report["notice"]
    assert "WARNING: scoring all people" in everyone.stderr
