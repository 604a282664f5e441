import json
import shutil

from click.testing import CliRunner

from embedkit.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def test_compare_json(lfw_dir, facenet_encoder):
    a = lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
    b = lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
    result = run("compare", a, b, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["same"] is True and data["score"] > data["threshold"]


def test_index_then_query_with_no_other_flags(att_dir, tmp_path, facenet_encoder, embedkit_home):
    photos = tmp_path / "photos"
    for person in ("s1", "s2", "s3"):
        shutil.copytree(att_dir / person, photos / person)
    result = run("index", photos, "--no-detect", "--labels", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total_faces"] == 30 and report["n_errors"] == 0
    assert (embedkit_home / "indexes" / "default" / "metadata.sqlite").is_file()
    # query reuses the index's own settings (--no-detect) without being told
    result = run("query", att_dir / "s2" / "5.pgm", "--json", "-k", "2")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["schema"] == "embedkit.query/1" and answer["results"][0]["error"] is None
    faces = answer["results"][0]["faces"]
    assert faces[0]["matches"][0]["label"] == "s2" and faces[0]["matches"][0]["score"] > 0.99
    text = run("query", att_dir / "s2" / "5.pgm")
    assert "s2/5.pgm" in text.output
    verify = run("index", "--verify", "--json")
    assert verify.exit_code == 0 and json.loads(verify.output)["ok"]


def test_query_with_another_backbone_is_refused(att_dir, tmp_path, facenet_encoder):
    photos = tmp_path / "photos"
    shutil.copytree(att_dir / "s1", photos / "s1")
    assert run("index", photos, "--no-detect", "--index", tmp_path / "idx").exit_code == 0
    result = run("query", att_dir / "s1" / "1.pgm", "--index", tmp_path / "idx", "--backbone", "simple",
                 "--weights", "random")
    assert result.exit_code != 0 and "index was built with model" in result.output


def test_unknown_backbone_and_missing_index(att_dir, tmp_path):
    result = run("compare", att_dir / "s1" / "1.pgm", att_dir / "s1" / "2.pgm", "--backbone", "nope")
    assert result.exit_code == 1 and "unknown backbone 'nope'" in result.output and "facenet" in result.output
    result = run("query", att_dir / "s1" / "1.pgm", "--index", tmp_path / "nothing")
    assert result.exit_code == 1 and "no embedkit index here" in result.output


def test_backbones_list():
    result = run("backbones", "--json")
    data = json.loads(result.output)
    assert data["schema"] == "embedkit.backbones/1"
    assert {"facenet", "facenet512", "vgg16", "simple", "sface"} <= {row["name"] for row in data["backbones"]}
