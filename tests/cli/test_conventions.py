"""What every command shares: --json / -v anywhere, schema stamps, JSON errors, exit codes; many-at-once modes."""

import csv
import io
import json
import shutil

import pytest
from click.testing import CliRunner

from embedkit.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiny_model(tiny_encoder, tmp_path_factory):
    return tiny_encoder.save(tmp_path_factory.mktemp("tiny") / "model")


def test_json_and_verbose_before_or_after_the_command(att_dir, tiny_model):
    a, b = att_dir / "s1" / "1.pgm", att_dir / "s1" / "2.pgm"
    for args in (("compare", a, b, "--no-detect", "--model", tiny_model, "--json", "-v"),
                 ("--json", "-v", "compare", a, b, "--no-detect", "--model", tiny_model)):
        result = run(*args)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["schema"] == "embedkit.compare/1" and 0 <= data["score"] <= 1.0001
    weights = run("weights", "list", "--json")
    assert json.loads(weights.stdout)["schema"] == "embedkit.weights.list/1"


def test_errors_as_json_on_stderr_with_exit_codes(att_dir, tmp_path):
    missing = tmp_path / "missing.jpg"
    # The missing photo is reported before the (also missing) model is looked at.
    result = run("compare", att_dir / "s1" / "1.pgm", missing, "--model", tmp_path / "no-model", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    error = json.loads(result.stderr)
    assert error["schema"] == "embedkit.error/1" and error["error"]["exit_code"] == 1
    assert str(missing) in error["error"]["message"] and "No such file" in error["error"]["message"]
    usage = run("compare", "--no-such-option", "--json")
    assert usage.exit_code == 2 and json.loads(usage.stderr)["error"]["exit_code"] == 2
    plain = run("compare", "--no-such-option")
    assert plain.exit_code == 2 and "No such option" in plain.stderr


def test_compare_pairs_csv_and_ndjson(att_dir, tiny_model, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    pairs = tmp_path / "pairs.csv"
    rows = [(att_dir / "s1" / "1.pgm", att_dir / "s1" / "2.pgm"), (att_dir / "s1" / "1.pgm", bad),
            (att_dir / "s2" / "1.pgm", att_dir / "s1" / "2.pgm")]
    pairs.write_text("path_a,path_b\n" + "".join(f"{a},{b}\n" for a, b in rows))
    result = run("compare", "--pairs", pairs, "--no-detect", "--model", tiny_model)
    assert result.exit_code == 1 and "1 of 3 pairs could not be compared" in result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["path_b"] for r in table] == [str(b) for _, b in rows]
    assert table[0]["error"] == "" and float(table[0]["score"]) > float(table[2]["score"]) - 1
    assert str(bad) in table[1]["error"] and table[1]["score"] == ""
    ndjson = run("compare", "--pairs", pairs, "--no-detect", "--model", tiny_model, "--json")
    lines = [json.loads(line) for line in ndjson.stdout.splitlines()]
    assert len(lines) == 3 and all(line["schema"] == "embedkit.compare/1" for line in lines)
    assert lines[0]["score"] == pytest.approx(float(table[0]["score"]), abs=1e-4)
    assert "error" in lines[1] and "score" not in lines[1]


def test_query_many_images_and_a_folder_then_info(att_dir, tiny_model, tmp_path):
    photos = tmp_path / "photos"
    for person in ("s1", "s2"):
        shutil.copytree(att_dir / person, photos / person)
    index = tmp_path / "index"
    assert run("index", photos, "--no-detect", "--model", tiny_model, "--index", index, "-v").exit_code == 0
    queries = tmp_path / "queries"
    queries.mkdir()
    shutil.copy(att_dir / "s1" / "3.pgm", queries / "a.pgm")
    shutil.copy(att_dir / "s2" / "4.pgm", queries / "b.pgm")
    result = run("query", att_dir / "s1" / "1.pgm", queries, "--index", index, "-k", "1", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert [r["path"] for r in answer["results"]] == [str(att_dir / "s1" / "1.pgm"), str(queries / "a.pgm"),
                                                      str(queries / "b.pgm")]
    first = answer["results"][0]["faces"][0]["matches"][0]
    assert first["score"] > 0.999 and first["path"] == str(photos / "s1" / "1.pgm")
    unchanged = run("index", photos, "--index", index, "--json")
    assert json.loads(unchanged.stdout)["unchanged"] == 20
    info = run("info", "--json")
    data = json.loads(info.stdout)
    assert data["schema"] == "embedkit.info/1" and data["versions"]["embedkit"]
    assert set(data) >= {"home", "weights_dir", "indexes", "conversions"}
