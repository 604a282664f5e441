"""End-to-end evaluation on real face files: pairs (LFW protocol) and identity folders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from embedkit.evaluation.evaluate import (
    MISSING_SCORE,
    evaluate_folder,
    evaluate_pairs,
    utkface_groups,
)
from embedkit.evaluation.pairs import LfwPair, read_lfw_pairs
from embedkit.faces import FaceExtractor
from embedkit.faces.select import subject_face as central_face
from embedkit.pipeline import FacePipeline

VERIFICATION_KEYS = {"accuracy", "accuracy_std", "fold_accuracies", "auc", "eer", "eer_threshold",
                     "tar_at_far_1e-2", "tar_at_far_1e-3", "threshold", "n_pairs", "n_folds"}


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_encoder):
    return FacePipeline(tiny_encoder, FaceExtractor(tiny_encoder.input_size, None), workers=2)


def att_pairs(n_people: int = 4) -> list[LfwPair]:
    """Same pairs (s_i/1, s_i/2) and different pairs (s_i/3, s_{i+1}/3), alternating over two folds."""
    pairs = []
    for i in range(1, n_people + 1):
        j = i % n_people + 1
        pairs.append(LfwPair(f"s{i}/1.pgm", f"s{i}/2.pgm", True, i % 2))
        pairs.append(LfwPair(f"s{i}/3.pgm", f"s{j}/3.pgm", False, i % 2))
    return pairs


def test_utkface_groups_from_file_names():
    assert utkface_groups("x/26_1_2_20170116174525125.jpg.chip.jpg") == {"gender": "female", "race": "asian"}
    assert utkface_groups("40_0_0_2017.jpg") == {"gender": "male", "race": "white"}
    assert utkface_groups("not_a_utk_name.jpg") is None
    assert utkface_groups("30_2_0_x.jpg") is None  # no gender 2


def test_central_face_is_chosen(tmp_path):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.new("RGB", (200, 100)).save(path)

    class F:
        def __init__(self, box):
            self.box = box

    faces = [F((0, 0, 60, 60)), F((85, 35, 30, 30)), F((150, 10, 40, 40))]  # largest first
    assert central_face(faces, str(path)) == 1
    assert central_face(faces[:1], str(path)) == 0
    assert central_face(faces, str(tmp_path / "missing.png")) == 0  # no size: largest


def test_evaluate_pairs_counts_missing_images_as_different(tiny_pipeline, att_dir, tmp_path):
    root = tmp_path / "images"
    for i in range(1, 5):
        shutil.copytree(att_dir / f"s{i}", root / f"s{i}")
    (root / "s1" / "2.pgm").write_bytes(b"not an image")
    pairs = att_pairs(4)

    report = evaluate_pairs(tiny_pipeline, pairs, root, keep_scores=True)
    assert VERIFICATION_KEYS <= set(report)
    assert report["n_pairs"] == 8 and report["n_folds"] == 2 and report["fold_source"] == "given"
    assert report["folds_share_people"] is True  # s2 is in a fold-1 and a fold-0 pair
    assert report["n_images"] == 12  # each s_i/3 is in two pairs, embedded once
    assert report["n_missing"] == 1 and report["n_errors"] == 1
    assert report["errors"][0]["path"].endswith("s1/2.pgm")
    assert report["pairs_with_missing"] == 1
    assert report["scores"][0] == MISSING_SCORE  # the same pair with the broken file: a 'different' verdict
    assert np.all(report["scores"][1:] > -1.0001)

    first = evaluate_pairs(tiny_pipeline, pairs, root, folds=1)
    assert first["n_pairs"] == 4 and first["fold_source"] == "stratified"


def test_evaluate_folder_retrieval_and_groups(tiny_pipeline, faces_dir, tmp_path):
    utk = faces_dir / "utkface"
    root = tmp_path / "utk"
    for gender in ("females", "males"):
        for race in ("asian", "white"):
            folder = root / gender / race
            folder.mkdir(parents=True)
            for path in sorted((utk / gender / race).iterdir())[:6]:
                shutil.copy(path, folder / path.name)

    result = evaluate_folder(tiny_pipeline, root, n_pairs=200, seed=1, ks=(1, 3), group_fn=utkface_groups,
                             one_photo=True, copies=2)
    verification, retrieval, groups = result["verification"], result["retrieval"], result["groups"]
    assert VERIFICATION_KEYS <= set(verification)
    assert result["images"]["n_items"] == 24 * 3 and result["images"]["layout"] == "photos"
    assert set(retrieval) >= {"rank1", "recall@1", "recall@3"}
    assert 0.0 <= retrieval["rank1"] <= retrieval["recall@3"] <= 1.0
    assert set(groups) == {"gender", "race"}
    assert set(groups["race"]["groups"]) <= {"asian", "white", "mixed"}
    assert groups["gender"]["threshold"] == pytest.approx(verification["threshold"])

    again = evaluate_folder(tiny_pipeline, root, n_pairs=200, seed=1, ks=(1, 3), one_photo=True, copies=2)
    assert again["verification"]["accuracy"] == verification["accuracy"]
    assert again["groups"] is None


def test_identity_folder_verification(tiny_pipeline, att_dir):
    result = evaluate_folder(tiny_pipeline, att_dir, n_pairs=400, seed=0)
    assert result["verification"]["n_pairs"] == 400
    assert result["verification"]["fold_source"] == "identity-disjoint"  # 40 people fill 10 folds
    assert result["retrieval"]["n_queries"] == 400
    assert result["images"]["n_people"] == 40


def test_pretrained_facenet_on_lfw_fold_one(facenet_encoder, faces_dir):
    """~30 pairs of LFW's first fold, with detection: the real model must get them nearly all right."""
    lfw = faces_dir / "lfw"
    fold = [p for p in read_lfw_pairs(lfw / "pairs.txt") if p.fold == 0]
    pairs = fold[:15] + fold[300:315]
    pipeline = FacePipeline(facenet_encoder, FaceExtractor(facenet_encoder.input_size, "yunet"))
    report = evaluate_pairs(pipeline, pairs, lfw / "lfw-deepfunneled")
    assert report["n_pairs"] == 30 and report["n_missing"] == 0
    assert report["accuracy"] >= 0.9
    assert report["auc"] >= 0.95


def test_folder_folds_that_share_people_say_so_and_no_face_photos_count(tiny_pipeline, att_dir, tmp_path):
    import cv2

    root = tmp_path / "few"
    for i in range(1, 5):  # 4 people cannot fill 10 identity-disjoint folds
        shutil.copytree(att_dir / f"s{i}", root / f"s{i}")
    cv2.imwrite(str(root / "s1" / "blank.png"), np.zeros((40, 40, 3), np.uint8))
    extractor = FaceExtractor(tiny_pipeline.encoder.input_size, "yunet")
    pipeline = FacePipeline(tiny_pipeline.encoder, extractor, workers=2)
    result = evaluate_folder(pipeline, root, n_pairs=300, seed=0, keep_scores=True)
    verification, images = result["verification"], result["images"]
    assert verification["fold_source"] == "shared-people"
    assert images["n_no_face"] >= 1 and images["n_items"] == 41
    # Pairs with the blank photo are scored as 'different', not dropped.
    assert verification["pairs_with_missing"] >= 1
    assert np.sum(result["scores"] == MISSING_SCORE) == verification["pairs_with_missing"]
