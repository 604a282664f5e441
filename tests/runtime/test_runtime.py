"""The fast runtime: conversion once, cached by the weights' hash, same embeddings, no TensorFlow after."""

import json
import subprocess
import sys

import numpy as np
import pytest

from embedkit.runtime import load_encoder
from embedkit.runtime.cache import ENTRY_FILE, RUNTIME_DIR


@pytest.fixture(scope="module")
def faces(att_dir):
    from embedkit.faces import FaceExtractor

    extractor = FaceExtractor(32, detector=None)
    return np.stack([extractor.from_file(att_dir / f"s{i}" / "1.pgm")[0].crop for i in range(1, 6)])


@pytest.fixture()
def model_dir(tiny_encoder, tmp_path):
    return tiny_encoder.save(tmp_path / "model")


def _entries(model_dir):
    return sorted((model_dir / RUNTIME_DIR).glob(f"*/{ENTRY_FILE}"))


def test_first_load_converts_then_runs_the_conversion(model_dir, tiny_encoder, faces):
    assert not _entries(model_dir)
    first = load_encoder(model_dir)
    [entry] = _entries(model_dir)
    assert first.backend == "litert"
    assert json.loads(entry.read_text())["model_id"] == tiny_encoder.model_id
    fast = load_encoder(model_dir)
    assert fast.backend == "litert" and fast.model_id == tiny_encoder.model_id
    assert fast.embedding_dim == tiny_encoder.embedding_dim and fast.input_size == 32
    expected = tiny_encoder.encode(faces)
    got = fast.encode(faces, batch_size=2)
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4
    flipped = fast.encode(faces, flip=True)
    assert np.abs(flipped - tiny_encoder.encode(faces, flip=True)).max() < 1e-4


def test_changed_weights_never_reuse_a_stale_conversion(model_dir, tiny_encoder, faces):
    import keras

    from embedkit.encoder import Encoder

    load_encoder(model_dir)
    keras.utils.set_random_seed(7)
    Encoder.from_backbone("simple", weights="random", input_size=32).save(model_dir)
    reloaded = load_encoder(model_dir, backend="tensorflow")
    assert reloaded.model_id != tiny_encoder.model_id
    fast = load_encoder(model_dir)
    assert len(_entries(model_dir)) == 2
    assert fast.backend == "litert" and fast.model_id == reloaded.model_id
    assert np.abs(fast.encode(faces) - reloaded.encode(faces)).max() < 1e-4


def test_model_id_comes_from_the_conversion_not_the_folder_config(model_dir, tiny_encoder):
    """The fast path never takes the config's word for the model id: a config that claims
    another id than the converted weights give is refused, as Encoder.load refuses it."""
    import pytest

    from embedkit.encoder import CONFIG_FILE
    from embedkit.errors import ModelError

    assert load_encoder(model_dir).model_id == tiny_encoder.model_id
    config_path = model_dir / CONFIG_FILE
    config = json.loads(config_path.read_text())
    config["model_id"] = "simple-0000000000000000"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelError, match=f"weights give {tiny_encoder.model_id}"):
        load_encoder(model_dir)


def test_damaged_entry_is_converted_again(model_dir, tiny_encoder):
    load_encoder(model_dir)
    [entry] = _entries(model_dir)
    entry.write_text("{not json")
    again = load_encoder(model_dir)  # converted again
    assert again.backend == "litert" and again.model_id == tiny_encoder.model_id
    assert json.loads(entry.read_text())["model_id"] == tiny_encoder.model_id


def test_forced_tensorflow_and_bulk_switch(model_dir, tiny_encoder):
    load_encoder(model_dir)
    assert type(load_encoder(model_dir, backend="tensorflow")).__name__ == "Encoder"
    bulk = load_encoder(model_dir, job="bulk")
    assert bulk.for_job(10) is bulk
    big = bulk.for_job(bulk.bulk_min_faces)
    assert type(big).__name__ == "Encoder" and big.model_id == bulk.model_id
    assert load_encoder(model_dir, job="single").bulk_loader is None


def test_the_fast_path_imports_no_tensorflow(model_dir, att_dir):
    load_encoder(model_dir)  # convert
    code = (
        "import sys\n"
        "from embedkit.runtime import load_encoder\n"
        "from embedkit.pipeline import FacePipeline\n"
        "from embedkit.compare import compare_files\n"
        f"enc = load_encoder({str(model_dir)!r})\n"
        "from embedkit.faces import FaceExtractor\n"
        "p = FacePipeline(enc, FaceExtractor(enc.input_size, None))\n"
        f"r = compare_files(p, {str(att_dir / 's1' / '1.pgm')!r}, {str(att_dir / 's1' / '2.pgm')!r})\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'\n"
        "print(r.model_id)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == load_encoder(model_dir).model_id
    assert result.stderr == ""  # quiet: no native start-up lines


def test_random_weights_stay_on_tensorflow():
    import keras

    keras.utils.set_random_seed(0)
    encoder = load_encoder(backbone="simple", weights="random")
    assert type(encoder).__name__ == "Encoder"


def test_pretrained_facenet_runs_its_measured_fp16_conversion(facenet_encoder, lfw_dir):
    from embedkit.backbones import get_backbone
    from embedkit.faces import FaceExtractor
    from embedkit.runtime import litert

    assert get_backbone("facenet").litert_quantization in litert.QUANTIZATIONS
    fast = load_encoder(backbone="facenet", job="bulk")
    assert fast.backend == "litert-fp16"
    assert fast.model_id == facenet_encoder.model_id  # same weights: indexes built either way stay searchable
    assert fast.for_job(10) is fast and fast.bulk_min_faces > 10
    extractor = FaceExtractor(160)
    photos = [lfw_dir / "Aaron_Peirsol" / f"Aaron_Peirsol_000{n}.jpg" for n in (1, 2)]
    photos.append(lfw_dir / "George_W_Bush" / "George_W_Bush_0001.jpg")
    crops = np.stack([extractor.from_file(p)[0].crop for p in photos])
    fp16, exact = fast.encode(crops), facenet_encoder.encode(crops)
    assert np.all(np.sum(fp16 * exact, axis=1) > litert.MIN_QUANTIZED_COSINE)
    assert np.allclose(np.linalg.norm(fp16, axis=1), 1, atol=1e-5)
    assert abs(float(fp16[0] @ fp16[1]) - float(exact[0] @ exact[1])) < 1e-3


def test_quantised_conversion_has_its_own_cache_key():
    from embedkit.runtime.select import Conversion

    plain = Conversion(["ab" * 32], {"backbone": "facenet"}, None, None, "pretrained", {})
    fp16 = Conversion(["ab" * 32], {"backbone": "facenet"}, None, None, "pretrained", {}, quantization="fp16")
    assert plain.backend == "litert" and fp16.backend == "litert-fp16"
    assert plain.key() != fp16.key()
