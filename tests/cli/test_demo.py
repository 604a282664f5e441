import json

from click.testing import CliRunner

from embedkit.cli import main


def test_demo_finds_both_people(facenet_encoder, tmp_path):
    result = CliRunner().invoke(main, ["demo", "--json", "--index", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["index"]["total_faces"] == 12
    assert all(q["found"] == q["expected"] for q in data["queries"])
    assert data["compare_same"]["same"] and not data["compare_different"]["same"]
