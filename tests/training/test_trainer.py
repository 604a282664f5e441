"""End-to-end fine-tuning with tiny models on a few real faces."""

import json

import numpy as np
import pytest

from embedkit.data.folders import identity_folders
from embedkit.encoder import Encoder
from embedkit.errors import EmbedkitError
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
