import json

import numpy as np
import pytest

from embedkit.encoder import CONFIG_FILE, Encoder, load_encoder
from embedkit.errors import ModelError
from embedkit.faces import FaceExtractor


def _att_crops(att_dir, people, images, size=160):
    extractor = FaceExtractor(size, detector=None)
    crops, labels = [], []
    for person in people:
        for i in images:
            crops.append(extractor.from_file(att_dir / f"s{person}" / f"{i}.pgm")[0].crop)
            labels.append(person)
    return np.stack(crops), np.array(labels)


def test_embeddings_are_unit_length_float32(tiny_encoder):
    faces = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    emb = tiny_encoder.encode(faces, batch_size=3)
    assert emb.shape == (7, tiny_encoder.embedding_dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # batching and eager/graph execution do not change the answer
    np.testing.assert_allclose(tiny_encoder.encode(faces[:2]), emb[:2], atol=1e-5)
    assert tiny_encoder.encode(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, tiny_encoder.embedding_dim)


def test_save_and_load_give_the_same_embeddings(tiny_encoder, tmp_path):
    faces = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    tiny_encoder.save(tmp_path / "model")
    loaded = Encoder.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.encode(faces), tiny_encoder.encode(faces), atol=1e-6)
    assert loaded.model_id == tiny_encoder.model_id
    assert loaded.preprocessing == tiny_encoder.preprocessing


def test_head_changes_embedding_size_and_model_id(tmp_path):
    encoder = Encoder.from_backbone("simple", weights="random", input_size=32, head_units=(64, 16))
    assert encoder.embedding_dim == 16
    encoder.save(tmp_path / "m")
    assert Encoder.load(tmp_path / "m").embedding_dim == 16
    other = Encoder.from_backbone("simple", weights="random", input_size=32)
    assert other.model_id != encoder.model_id


def test_model_folder_errors(tiny_encoder, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Encoder.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not an embedkit model folder"):
        Encoder.load(tmp_path / "empty")
    folder = tiny_encoder.save(tmp_path / "old")
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["format"] = "embedkit-model/0"
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ModelError, match="not supported"):
        Encoder.load(folder)


def test_pretrained_facenet_scores_same_person_above_different(facenet_encoder, att_dir):
    crops, labels = _att_crops(att_dir, people=range(1, 9), images=(1, 2, 3))
    emb = facenet_encoder.encode(crops)
    scores = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    same_scores, diff_scores = scores[same & off_diagonal], scores[~same]
    assert same_scores.mean() > diff_scores.mean() + 0.3
    # the calibrated threshold separates nearly all of them
    threshold = facenet_encoder.same_threshold
    accuracy = ((same_scores >= threshold).sum() + (diff_scores < threshold).sum()) / (len(same_scores) + len(diff_scores))
    assert accuracy > 0.95
    assert facenet_encoder.threshold is not None


def test_load_encoder_defaults_to_pretrained_facenet(facenet_encoder):
    assert facenet_encoder.backbone == "facenet" and facenet_encoder.embedding_dim == 128
    assert load_encoder.__defaults__[:2] == (None, None)
