"""`embedkit compare` places the score among pairs of strangers (the packaged LFW reference)."""

import json

from click.testing import CliRunner

from embedkit.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_compare_says_where_the_score_sits_among_strangers(lfw_dir, facenet_encoder):
    same_a = lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
    same_b = lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
    other = lfw_dir / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg"
    text = run("compare", same_a, same_b)
    assert text.exit_code == 0, text.output
    assert "of pairs of strangers (LFW" in text.output and "other face settings" not in text.output
    same = json.loads(run("compare", same_a, same_b, "--json").output)
    different = json.loads(run("compare", same_a, other, "--json").output)
    assert same["strangers_below"] > 0.99 and different["strangers_below"] < same["strangers_below"]
    assert different["strangers"].startswith("more similar than ")
    # No reference for a model with other weights: no percentile, said plainly by its absence.
    random = json.loads(run("compare", same_a, other, "--backbone", "simple", "--weights", "random", "--json").output)
    assert random["strangers_below"] is None and random["strangers"] is None
