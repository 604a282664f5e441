import numpy as np
import pytest

from embedkit.backbones import get_backbone
from embedkit.errors import EmbedkitError, ModelError
from embedkit.faces import FaceExtractor
from embedkit.pipeline import FacePipeline
from embedkit.runtime import load_encoder

PAIR_SAME = ("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2)
OTHER = ("George_W_Bush", 1)


def _photo(lfw_dir, name, number):
    return lfw_dir / name / f"{name}_{number:04d}.jpg"


@pytest.fixture(scope="module")
def fused():
    return load_encoder(backbone="facenet+sface")


@pytest.fixture(scope="module")
def parts():
    return load_encoder(backbone="facenet"), load_encoder(backbone="sface")


def test_fused_is_registered_inference_only(fused):
    spec = get_backbone("facenet+sface")
    assert spec.output_dim == fused.embedding_dim == 256
    with pytest.raises(ModelError, match="inference-only"):
        spec.build()
    with pytest.raises(ModelError, match="pretrained"):
        load_encoder(backbone="facenet+sface", weights="random")
    assert fused.model_id.startswith("facenet+sface-")
    assert fused.framings == ((160, "facenet"), (112, "arcface"))


def test_each_face_is_cropped_in_both_framings(fused, parts, lfw_dir):
    path = _photo(lfw_dir, *PAIR_SAME[0])
    [face] = FaceExtractor.for_encoder(fused).from_file(path)
    [facenet_face] = FaceExtractor.for_encoder(parts[0]).from_file(path)
    [sface_face] = FaceExtractor.for_encoder(parts[1]).from_file(path)
    assert face.crop.shape == (160, 160, 3) and [c.shape for c in face.extra_crops] == [(112, 112, 3)]
    assert np.array_equal(face.crop, facenet_face.crop)
    assert np.array_equal(face.extra_crops[0], sface_face.crop)
    assert FaceExtractor.for_encoder(fused).describe()["extra_framings"] == [[112, "arcface"]]


def test_fused_embedding_is_the_parts_joined(fused, parts, lfw_dir):
    paths = [_photo(lfw_dir, *p) for p in (*PAIR_SAME, OTHER)]
    joined = np.stack([r.embeddings[0] for r in FacePipeline(fused).embed_files(paths)])
    each = [np.stack([r.embeddings[0] for r in FacePipeline(part).embed_files(paths)]) for part in parts]
    assert joined.shape == (3, 256)
    assert np.allclose(np.linalg.norm(joined, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(joined, np.concatenate(each, axis=1) / np.sqrt(2), atol=1e-6)
    # so the fused cosine is the mean of the two networks' cosines
    cosines = [e @ e.T for e in each]
    np.testing.assert_allclose(joined @ joined.T, (cosines[0] + cosines[1]) / 2, atol=1e-5)


def test_fused_verdicts_use_its_own_threshold(fused, lfw_dir):
    from embedkit.calibration import threshold_for
    from embedkit.compare import compare_files

    pipeline = FacePipeline(fused)
    threshold = threshold_for(pipeline)
    assert threshold.calibrated and threshold.value == pytest.approx(get_backbone("facenet+sface").threshold)
    same = compare_files(pipeline, _photo(lfw_dir, *PAIR_SAME[0]), _photo(lfw_dir, *PAIR_SAME[1]))
    different = compare_files(pipeline, _photo(lfw_dir, *PAIR_SAME[0]), _photo(lfw_dir, *OTHER))
    assert same.same and not different.same and same.score > different.score


def test_fused_encoder_refuses_one_crop_array(fused):
    with pytest.raises(ValueError, match="takes 2 crops"):
        fused.encode(np.zeros((2, 160, 160, 3), np.uint8))
    with pytest.raises(ValueError, match="different numbers"):
        fused.encode((np.zeros((2, 160, 160, 3), np.uint8), np.zeros((3, 112, 112, 3), np.uint8)))


def test_pipeline_refuses_an_extractor_of_other_framings(fused):
    with pytest.raises(ValueError, match="encoder wants"):
        FacePipeline(fused, FaceExtractor(160))


def test_fused_index_and_query(fused, att_dir, tmp_path):
    from embedkit.cli.common import pipeline_source
    from embedkit.index import FaceIndex

    photos = tmp_path / "photos"
    for person in ("s1", "s2"):
        (photos / person).mkdir(parents=True)
        for n in range(1, 5):
            (photos / person / f"{n}.pgm").symlink_to(att_dir / person / f"{n}.pgm")
    pipeline = FacePipeline(fused, FaceExtractor.for_encoder(fused, None))
    with FaceIndex.create(tmp_path / "index") as index:
        index.update(photos, pipeline, source=pipeline_source({"no_detect": True, "backbone": "facenet+sface"}))
        query = pipeline.embed_file(att_dir / "s1" / "9.pgm").embeddings
        [matches] = index.search(query, 4)
        assert index.dim == 256
    assert [m["path"].split("/")[-2] for m in matches] == ["s1"] * 4


def test_augmented_evaluation_needs_one_framing(fused, att_dir):
    from embedkit.evaluation.evaluate import evaluate_folder

    pipeline = FacePipeline(fused, FaceExtractor.for_encoder(fused, None))
    with pytest.raises(EmbedkitError, match="framings"):
        evaluate_folder(pipeline, att_dir / "s1", one_photo=True, copies=2)


def test_fused_ships_its_impostor_reference(fused, lfw_dir):
    from embedkit.compare import compare_files
    from embedkit.evaluation.reference import reference_for

    pipeline = FacePipeline(fused)
    reference = reference_for(fused, pipeline.extractor.describe())
    assert reference is not None and reference.about["model_id"] == fused.model_id
    assert reference.n_pairs > 10_000_000 and "face_setting_differs" not in reference.about
    result = compare_files(pipeline, _photo(lfw_dir, *PAIR_SAME[0]), _photo(lfw_dir, *PAIR_SAME[1]))
    assert result.strangers_below > 0.999 and "strangers" in result.strangers
