"""Impostor-score references: quantile tables and where a score sits among them."""

import numpy as np
import pytest

from embedkit.evaluation.reference import (
    ImpostorReference,
    format_percent,
    packaged_reference,
    phrase,
    reference_for,
)


def test_fraction_below_matches_the_empirical_share():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.1, 0.15, 200_000)
    reference = ImpostorReference.from_scores(scores, {"source": "synthetic"})
    for score in (-0.2, 0.0, 0.1, 0.3):
        assert reference.fraction_below(score) == pytest.approx(np.mean(scores < score), abs=1e-3)
    for score in (0.45, 0.55, 0.65):  # the top tail, which the words are about, is finely tabled
        above = np.mean(scores >= score)
        assert 1 - reference.fraction_below(score) == pytest.approx(above, rel=0.05)
    assert reference.fraction_below(-5) == 0.0 and reference.fraction_below(5) == 1.0
    # The table is small however many pairs it summarises.
    assert len(reference.levels) < 600 and reference.n_pairs == 200_000


def test_round_trip_and_bad_tables():
    reference = ImpostorReference.from_scores(np.linspace(-1, 1, 101), {"model_id": "m"})
    again = ImpostorReference.from_dict(reference.to_dict())
    assert again == reference and again.fraction_below(0.0) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError):
        ImpostorReference.from_dict({"levels": [0, 1], "scores": [0.5, 0.1], "n_pairs": 2})
    with pytest.raises(ValueError):
        ImpostorReference.from_scores([0.3])


def test_words():
    assert phrase(0.9923, 1000) == "more similar than 99.2% of pairs of strangers"
    assert format_percent(0.99996) == "99.996%" and format_percent(0.5) == "50.0%"
    assert format_percent(0.999999) != "100.0%"
    assert "every one of the 3,000" in phrase(1.0, 3000)


def test_packaged_facenet_reference_applies_to_pretrained_facenet_only(facenet_encoder, tiny_encoder):
    packaged = packaged_reference("facenet")
    assert packaged is not None, "embedkit/evaluation/references/facenet.json is missing"
    assert packaged.n_pairs > 100_000 and "LFW" in packaged.about["source"]
    reference = reference_for(facenet_encoder, packaged.about["face_setting"])
    assert reference is not None and not reference.about.get("face_setting_differs")
    # Same-person scores of pretrained facenet sit far above almost all strangers' pairs.
    assert reference.fraction_below(0.8) > 0.999 and reference.fraction_below(0.0) < 0.6
    # Another face setting: still a reference, flagged; another model: none.
    other = reference_for(facenet_encoder, {**packaged.about["face_setting"], "detector": None})
    assert other.about["face_setting_differs"]
    assert reference_for(tiny_encoder) is None
