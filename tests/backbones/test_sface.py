import numpy as np
import pytest

from embedkit.backbones import get_backbone
from embedkit.errors import ModelError
from embedkit.runtime import load_encoder


@pytest.fixture(scope="module")
def sface():
    return load_encoder(backbone="sface")


def test_sface_is_registered_inference_only(sface):
    spec = get_backbone("sface")
    assert spec.output_dim == 128 and spec.preprocessing.size == 112
    with pytest.raises(ModelError, match="inference-only"):
        spec.build()
    with pytest.raises(ModelError, match="pretrained"):
        load_encoder(backbone="sface", weights="random")
    assert sface.model_id.startswith("sface-") and sface.alignment == "arcface"


def test_sface_tells_people_apart(sface, lfw_dir):
    from embedkit.compare import compare_files
    from embedkit.pipeline import FacePipeline

    pipeline = FacePipeline(sface)
    assert pipeline.extractor.describe()["alignment"] == "arcface"
    a = lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
    b = lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
    c = lfw_dir / "George_W_Bush" / "George_W_Bush_0001.jpg"
    same, different = compare_files(pipeline, a, b), compare_files(pipeline, a, c)
    assert same.same and not different.same and same.score > different.score
    emb = sface.encode(np.zeros((3, 112, 112, 3), np.uint8), batch_size=2)
    assert emb.shape == (3, 128) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_sface_threshold_is_calibrated(sface):
    assert sface.threshold == get_backbone("sface").threshold == pytest.approx(0.326)


def test_sface_verdicts_use_its_calibrated_threshold(sface):
    from embedkit.calibration import threshold_for
    from embedkit.pipeline import FacePipeline

    threshold = threshold_for(FacePipeline(sface))
    assert threshold.calibrated and threshold.value == pytest.approx(0.326) and threshold.setting == "yunet"
