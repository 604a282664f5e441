import numpy as np
import pytest

from embedkit.backbones import Preprocessing, available_backbones, get_backbone
from embedkit.errors import UnknownNameError, WeightsError


def test_builtin_backbones_are_registered():
    assert {"facenet", "facenet512", "vgg16", "simple"} <= set(available_backbones())


def test_unknown_backbone_names_it_and_lists_valid_ones():
    with pytest.raises(UnknownNameError) as err:
        get_backbone("resnet9000")
    message = str(err.value)
    assert "resnet9000" in message
    for name in ("facenet", "vgg16", "simple"):
        assert name in message


@pytest.mark.parametrize("scaling", ["standardize", "fixed", "caffe", "unit"])
def test_preprocessing_scalings(scaling):
    prep = Preprocessing(size=8, scaling=scaling)
    faces = np.random.default_rng(0).integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8)
    out = prep(faces)
    assert out.shape == (2, 8, 8, 3) and out.dtype == np.float32
    if scaling == "standardize":
        assert np.allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-4)
        assert np.allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-3)
    if scaling == "unit":
        assert out.min() >= 0 and out.max() <= 1


def test_preprocessing_rejects_wrong_shape_and_roundtrips_config():
    prep = Preprocessing(size=16, scaling="fixed", grayscale=True)
    with pytest.raises(ValueError):
        prep(np.zeros((1, 8, 8, 3), np.uint8))
    assert Preprocessing.from_config(prep.get_config()) == prep
    grey = prep(np.random.default_rng(1).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8))
    assert np.allclose(grey[..., 0], grey[..., 2])


def test_simple_has_no_pretrained_weights():
    with pytest.raises(WeightsError, match="finetune"):
        get_backbone("simple").build("pretrained", 32)


def test_vgg16_random_and_local_weights_file(tmp_path):
    spec = get_backbone("vgg16")
    model = spec.build("random", 32)
    assert model.output_shape == (None, 512)
    weights_file = tmp_path / "vgg16_notop.weights.h5"
    model.save_weights(str(weights_file))
    again = spec.build(str(weights_file), 32)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(WeightsError, match="not found"):
        spec.build(str(tmp_path / "missing.h5"), 32)


def test_facenet_random_builds_at_its_input_size():
    model = get_backbone("facenet").build("random")
    assert model.input_shape == (None, 160, 160, 3)
    assert model.output_shape == (None, 128)
