"""LFW pairs.txt parsing and fold-aware pair sampling (embedkit.evaluation.pairs)."""

from pathlib import Path

import numpy as np
import pytest

from embedkit.evaluation.pairs import LfwPair, read_lfw_pairs, sample_identity_pairs

FACES = (Path(__file__).parents[2] / ".." / "shared" / "faces").resolve()
LFW_PAIRS = FACES / "lfw" / "pairs.txt"
LFW_IMAGES = FACES / "lfw" / "lfw-deepfunneled"

needs_lfw = pytest.mark.usefixtures("faces_dir")  # conftest fails the run without the data


@needs_lfw
def test_real_lfw_pairs_follow_the_protocol():
    pairs = read_lfw_pairs(LFW_PAIRS)
    assert len(pairs) == 6000
    folds = np.array([p.fold for p in pairs])
    same = np.array([p.same for p in pairs])
    assert sorted(set(folds.tolist())) == list(range(10))
    for f in range(10):
        block = same[folds == f]
        assert block.size == 600
        assert block[:300].all() and not block[300:].any()
    # Fold blocks are contiguous and in file order.
    assert np.all(np.diff(folds) >= 0)


@needs_lfw
def test_real_lfw_pairs_reference_existing_images():
    pairs = read_lfw_pairs(LFW_PAIRS)
    paths = {p for pair in pairs for p in (pair.path_a, pair.path_b)}
    missing = sorted(p for p in paths if not (LFW_IMAGES / p).is_file())
    assert not missing, f"{len(missing)} images missing, e.g. {missing[:3]}"
    # Folds share no people (the protocol's promise).
    people = {}
    for pair in pairs:
        for p in (pair.path_a, pair.path_b):
            people.setdefault(p.split("/")[0], set()).add(pair.fold)
    assert all(len(f) == 1 for f in people.values())


def _write(tmp_path, text):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    return path


def test_parses_same_and_different_lines(tmp_path):
    path = _write(
        tmp_path,
        "2\t1\n"
        "Ann_Lee\t1\t12\n"
        "Bo\t3\tCy_Dee\t1\n"
        "Cy_Dee\t2\t4\n"
        "Ann_Lee\t2\tBo\t1\n",
    )
    assert read_lfw_pairs(path) == [
        LfwPair("Ann_Lee/Ann_Lee_0001.jpg", "Ann_Lee/Ann_Lee_0012.jpg", True, 0),
        LfwPair("Bo/Bo_0003.jpg", "Cy_Dee/Cy_Dee_0001.jpg", False, 0),
        LfwPair("Cy_Dee/Cy_Dee_0002.jpg", "Cy_Dee/Cy_Dee_0004.jpg", True, 1),
        LfwPair("Ann_Lee/Ann_Lee_0002.jpg", "Bo/Bo_0001.jpg", False, 1),
    ]


def test_single_number_header_is_one_fold(tmp_path):
    path = _write(tmp_path, "1\nA 1 2\nA 1 B 1\n")
    pairs = read_lfw_pairs(path)
    assert [p.fold for p in pairs] == [0, 0]


@pytest.mark.parametrize(
    "text, line",
    [
        ("1 1\nA 1 2\nA 1 B\n", 3),  # too few fields
        ("1 1\nA x 2\nA 1 B 1\n", 2),  # not a number
        ("1 1\nA 1 2 B 3 4\nA 1 B 1\n", 2),  # too many fields
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, line):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=rf"pairs\.txt:{line}: malformed"):
        read_lfw_pairs(path)


def test_bad_header_and_wrong_count(tmp_path):
    with pytest.raises(ValueError, match=r"pairs\.txt:1: bad header"):
        read_lfw_pairs(_write(tmp_path, "ten folds\nA 1 2\n"))
    with pytest.raises(ValueError, match=r"4 lines, found 3"):
        read_lfw_pairs(_write(tmp_path, "2 1\nA 1 2\nA 1 B 1\nC 1 2\n"))
    with pytest.raises(ValueError, match="empty"):
        read_lfw_pairs(_write(tmp_path, "\n"))


@pytest.fixture
def identity_labels():
    rng = np.random.default_rng(5)
    return rng.integers(0, 400, size=3000) * 3 + 11  # arbitrary, non-contiguous ids


def test_identity_pairs_are_balanced_and_valid(identity_labels):
    a, b, same, fold = sample_identity_pairs(identity_labels, 2000, seed=0)
    assert len(a) == 2000
    assert same.sum() == 1000
    assert np.all(a != b)
    np.testing.assert_array_equal(same, identity_labels[a] == identity_labels[b])
    assert np.bincount(fold).tolist() == [200] * 10
    for f in range(10):
        assert same[fold == f].sum() == 100
    keys = set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
    assert len(keys) == 2000


def test_identity_pairs_folds_are_identity_disjoint(identity_labels):
    a, b, _, fold = sample_identity_pairs(identity_labels, 2000, seed=0)
    seen = {}
    for idx in (a, b):
        for label, f in zip(identity_labels[idx].tolist(), fold.tolist()):
            seen.setdefault(label, set()).add(f)
    assert all(len(folds) == 1 for folds in seen.values())


def test_identity_pairs_reproducible(identity_labels):
    first = sample_identity_pairs(identity_labels, 500, seed=3, n_folds=5)
    again = sample_identity_pairs(identity_labels, 500, seed=3, n_folds=5)
    other = sample_identity_pairs(identity_labels, 500, seed=4, n_folds=5)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], other[0])
    assert sorted(set(first[3].tolist())) == list(range(5))


def test_too_few_identities_falls_back_to_shared_folds(caplog):
    labels = np.repeat(np.arange(4), 10)
    with caplog.at_level("WARNING"):
        a, b, same, fold = sample_identity_pairs(labels, 100, seed=0, n_folds=10)
    assert "identity-disjoint" in caplog.text
    assert len(a) == 100 and same.sum() == 50
    assert np.bincount(fold, minlength=10).tolist() == [10] * 10
    np.testing.assert_array_equal(same, labels[a] == labels[b])
