import numpy as np
import pytest

from embedkit.compare import compare_files
from embedkit.errors import EmbedkitError
from embedkit.faces import FaceExtractor
from embedkit.pipeline import FacePipeline


@pytest.fixture(scope="module")
def facenet_pipeline(facenet_encoder):
    return FacePipeline(facenet_encoder)


def test_pipeline_keeps_order_and_reports_errors(tiny_encoder, att_dir, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    paths = [att_dir / "s1" / "1.pgm", bad, att_dir / "s2" / "1.pgm"]
    pipeline = FacePipeline(tiny_encoder, FaceExtractor(32, detector=None), batch_size=2, workers=2)
    results = list(pipeline.embed_files(paths))
    assert [r.path for r in results] == [str(p) for p in paths]
    assert results[1].error and "not an image" in results[1].error
    assert results[0].embeddings.shape == (1, tiny_encoder.embedding_dim)
    assert results[1].embeddings.shape == (0, tiny_encoder.embedding_dim)


def test_compare_same_and_different_people(facenet_pipeline, lfw_dir):
    a = lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
    b = lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
    c = lfw_dir / "George_W_Bush" / "George_W_Bush_0001.jpg"
    same = compare_files(facenet_pipeline, a, b)
    different = compare_files(facenet_pipeline, a, c)
    assert same.same and not different.same
    assert same.score > different.score
    assert np.isclose(same.distance, np.sqrt(2 - 2 * same.score))
    assert same.calibrated and same.model_id == facenet_pipeline.encoder.model_id


def test_compare_names_the_file_without_a_face(facenet_pipeline, lfw_dir, tmp_path):
    from PIL import Image

    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 200), (120, 130, 140)).save(blank)
    with pytest.raises(EmbedkitError, match="wall.png: no face found"):
        compare_files(facenet_pipeline, lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg", blank)
