"""End-to-end fine-tuning with tiny models on a few real faces."""

import json

import numpy as np
import pytest

from embedkit.data.folders import identity_folders
from embedkit.encoder import Encoder
from embedkit.errors import EmbedkitError
from embedkit.evaluation.reference import reference_for
from embedkit.training import FinetuneConfig, finetune
from embedkit.training.dataset import build_face_set
from embedkit.data.splits import Split
from embedkit.faces import FaceExtractor
from embedkit.training.trainer import REPORT_FILE, REPORT_TEXT_FILE, ROC_FILE


def _config(data, out, **overrides):
    options = dict(data=str(data), out=str(out), input_size=32, detector=None, val_people=2, test_people=2,
                   epochs=2, pairs_per_epoch=96, eval_pairs=60, batch_size=32, seed=0)
    options.update(overrides)
    return FinetuneConfig(**options)


def _check_model_folder(result, att_folder):
    out = result.out
    for name in (REPORT_FILE, REPORT_TEXT_FILE, ROC_FILE):
        assert (out / name).is_file(), name
    loaded = Encoder.load(out)
    meta = loaded.metadata
    assert loaded.threshold is not None
    assert set(meta["split"]) >= {"train", "val", "test"}
    assert meta["finetune"]["backbone"] == result.report["backbone"]
    assert [h for h in meta["history"] if h["epoch"] > 0]
    assert meta["report"]["after"]["auc"] == pytest.approx(result.report["after"]["auc"])
    # The validation impostor scores' quantiles travel with the model, for `compare`'s percentile.
    reference = reference_for(loaded)
    assert reference is not None and reference.n_pairs > 10
    assert reference.about["model_id"] == loaded.model_id and reference.about["face_setting"]["detector"] is None
    # The saved folder rebuilds the trained network: same embeddings, same id.
    images = identity_folders(att_folder)
    split = Split.from_dict(meta["split"])
    faces = build_face_set(images, split, FaceExtractor(32, None))
    np.testing.assert_allclose(loaded.encode(faces.crops), result.encoder.encode(faces.crops), atol=1e-5)
    assert Encoder.load(out).model_id == result.encoder.model_id
    report = json.loads((out / REPORT_FILE).read_text())
    for side in ("before", "after"):
        for key in ("accuracy", "auc", "eer", "tar_at_far_1e-3"):
            assert 0.0 <= report[side][key] <= 1.0
    assert report["phases"] and report["phases"][0]["epochs_run"] >= 1


def test_simple_from_scratch_end_to_end(att_folder, tmp_path):
    result = finetune(_config(att_folder, tmp_path / "model", backbone="simple"))
    assert result.report["phases"][0]["phase"] == "scratch"
    assert result.report["test"]["people"] == 2
    _check_model_folder(result, att_folder)
    assert "pair accuracy" in result.text
    # The split is identity-disjoint and saved with the model.
    split = Encoder.load(result.out).metadata["split"]
    parts = [set(split[p]) for p in ("train", "val", "test")]
    assert [len(p) for p in parts] == [2, 2, 2] and len(parts[0] | parts[1] | parts[2]) == 6
    assert set(split["names"]["test"]) <= {f"s{i}" for i in range(1, 7)}


def test_vgg16_random_head_then_unfreeze(att_folder, tmp_path):
    config = _config(att_folder, tmp_path / "vgg", backbone="vgg16", weights="random", unfreeze=1,
                     unfreeze_epochs=1, hard_negatives=0.5)
    result = finetune(config)
    phases = [p["phase"] for p in result.report["phases"]]
    assert phases == ["head", "unfreeze1"]
    assert result.report["phases"][1]["feature_shape"] == [2, 2, 512]
    _check_model_folder(result, att_folder)


def test_nothing_to_train_is_an_error(att_folder, tmp_path):
    with pytest.raises(EmbedkitError, match="nothing to train"):
        finetune(_config(att_folder, tmp_path / "x", backbone="vgg16", weights="random", unfreeze=0, head_units=()))


def test_one_photo_per_person_tests_on_augmented_copies_only(tmp_path):
    """UTKFace protocol: held-out 'same' pairs are two augmented copies of one photo."""
    from pathlib import Path
    import shutil

    source = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "utkface" / "females" / "asian"
    photos = sorted(source.glob("*.jpg"))[:8]
    assert len(photos) == 8, f"UTKFace faces missing under {source}"
    data = tmp_path / "photos"
    data.mkdir()
    for photo in photos:
        shutil.copy(photo, data / photo.name)
    config = _config(data, tmp_path / "model", backbone="simple", one_photo_per_person=True, augment_copies=3,
                     epochs=1, eval_pairs=200)
    result = finetune(config)
    test = result.report["test"]
    assert test["augmented_copies_only"] is True
    # 2 test people x 3 copies; the photos themselves are not test items.
    assert test["people"] == 2 and test["crops"] == 6
    # All distinct pairs of 6 copies: 2 x 3 same + 9 different.
    assert test["pairs"] == 15 and test["same_pairs"] == 6


@pytest.mark.parametrize("loss", ["contrastive", "triplet", "arcface"])
def test_tiny_run_learns_and_reports_what_matters(att40, tmp_path, loss):
    # A head trained over frozen random VGG16 features of 28 people: validation AUC rises
    # from about 0.87 to about 0.91 in two epochs.
    config = _config(att40, tmp_path / loss, backbone="vgg16", weights="random", unfreeze=0, loss=loss,
                     val_people=6, test_people=6, epochs=2, pairs_per_epoch=1024, eval_pairs=400, patience=2,
                     learning_rate=1e-3)
    result = finetune(config)
    report, history = result.report, result.encoder.metadata["history"]
    # It learns: the best validation AUC beats the untrained network's.
    assert report["best_validation"]["val_auc"] > history[0]["val_auc"] + 0.02
    # The saved threshold is the one calibrated on the validation pairs of the saved epoch.
    assert result.encoder.threshold == pytest.approx(report["best_validation"]["val_threshold"])
    assert report["headline"]["after_threshold"] == pytest.approx(result.encoder.threshold)
    # Before and after are scored on the same test pairs: McNemar's counts add up on them.
    head, test = report["headline"], report["test"]
    n = test["pairs"]
    assert test["same_pairs"] + test["different_pairs"] == n == report["before"]["n_pairs"] == report["after"]["n_pairs"]
    assert head["n_pairs"] == n
    gained = head["only_after_right"] - head["only_before_right"]
    assert round((head["after_accuracy"] - head["before_accuracy"]) * n) == gained
    assert head["verdict"] in ("better", "worse", "no change")
    assert len(result.test_embeddings["before"]) == len(result.test_embeddings["after"]) == len(result.test_indices)
    assert "McNemar" in result.text and "different)" in result.text


def test_no_test_or_validation_photo_is_used_in_training(att40):
    from embedkit.data.splits import split_identities
    from embedkit.training.trainer import split_held_out

    images = identity_folders(att40)
    split = split_identities(images.labels, 6, 6, seed=0)
    faces = build_face_set(images, split, FaceExtractor(32, None))
    held_out = split_held_out(_config(att40, "unused", eval_pairs=100), faces)
    train_people = set(faces.labels[held_out.train].tolist())
    assert train_people == set(split.train)
    assert not train_people & (set(faces.labels[held_out.val].tolist()) | set(faces.labels[held_out.test].tolist()))
    train_paths = {images.paths[i] for i in faces.source[held_out.train]}
    held_paths = {images.paths[i] for i in faces.source[np.concatenate([held_out.val, held_out.test])]}
    assert train_paths and not train_paths & held_paths


def test_a_run_reproduces_from_its_seed(att_folder, tmp_path):
    first = finetune(_config(att_folder, tmp_path / "a", backbone="simple", epochs=1))
    second = finetune(_config(att_folder, tmp_path / "b", backbone="simple", epochs=1))
    np.testing.assert_allclose(first.test_embeddings["after"], second.test_embeddings["after"], atol=1e-6)
    assert first.report["after"]["auc"] == second.report["after"]["auc"]


def test_byte_identical_photos_are_dropped_before_the_split(att_folder, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(att_folder, data)
    shutil.copy(data / "s1" / "1.pgm", data / "s2" / "copy_of_s1.pgm")
    result = finetune(_config(data, tmp_path / "m", backbone="simple", epochs=1))
    assert result.report["n_duplicates_dropped"] == 1
    dropped = Encoder.load(result.out).metadata["faces"]["duplicates_dropped"]
    assert dropped[0]["path"].endswith("copy_of_s1.pgm")


def test_frozen_features_are_cached_and_reused(att_folder, tmp_path):
    cache = tmp_path / "cache"
    config = _config(att_folder, tmp_path / "m1", backbone="vgg16", weights="random", unfreeze=0, epochs=1,
                     feature_cache=str(cache))
    first = finetune(config)
    files = sorted(cache.glob("features_*.npy"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    config.out = str(tmp_path / "m2")
    second = finetune(config)
    assert files[0].stat().st_mtime_ns == stamp  # read, not written again
    np.testing.assert_allclose(first.test_embeddings["after"], second.test_embeddings["after"], atol=1e-6)


def test_triplet_needs_people_with_several_faces(att_folder, tmp_path):
    config = _config(att_folder, tmp_path / "m", backbone="simple", loss="triplet", max_images_per_person=1)
    with pytest.raises(EmbedkitError, match="two or more faces"):
        finetune(config)


@pytest.mark.parametrize("loss", ["distill", "triplet+distill"])
def test_distill_pulls_shifted_faces_onto_the_starting_model_of_the_clean_faces(att40, tmp_path, loss):
    from embedkit.data.shifts import apply_shift
    from embedkit.training.trainer import seed_everything

    cache = tmp_path / "cache"
    config = _config(att40, tmp_path / "m", backbone="vgg16", weights="random", unfreeze=0, loss=loss,
                     shift="mask", val_people=6, test_people=6, epochs=2, pairs_per_epoch=512, eval_pairs=200,
                     learning_rate=1e-3, feature_cache=str(cache))
    result = finetune(config)
    # The starting model, rebuilt from the seed as the trainer built it.
    seed_everything(config.seed)
    start = Encoder.from_backbone("vgg16", weights="random", input_size=32, head_units=(128,))
    split = Split.from_dict(result.encoder.metadata["split"])
    faces = build_face_set(identity_folders(att40), split, FaceExtractor(32, None))
    train = faces.indices("train")
    clean = faces.crops[train]
    # The targets are the starting model's embeddings of the CLEAN training faces.
    (targets_file,) = cache.glob("teacher_*.npy")
    targets = np.load(targets_file)
    np.testing.assert_allclose(targets, start.encode(clean), atol=1e-4)
    # Training brought the shifted training faces' embeddings closer to those targets.
    shifted = apply_shift("mask", clean, seed=config.seed + 1)
    before = np.mean(np.sum(start.encode(shifted) * targets, axis=1))
    after = np.mean(np.sum(result.encoder.encode(shifted) * targets, axis=1))
    assert 1.0 - after < 0.75 * (1.0 - before)  # random VGG16 features: about 0.985 -> 0.992
    # Validation and test faces were shifted too: the report scores shifted test faces.
    test_shifted = apply_shift("mask", faces.crops[result.test_indices], seed=config.seed + 3)
    np.testing.assert_allclose(result.test_embeddings["after"], result.encoder.encode(test_shifted), atol=1e-4)
    assert result.encoder.metadata["finetune"]["shift"] == "mask"
