"""An AT&T index (10 people, 9 photos each; photo 10 of each held out for queries), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

PEOPLE = [f"s{i}" for i in range(1, 11)]


@pytest.fixture(scope="session")
def att_photos(att_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("att-photos")
    for person in PEOPLE:
        (root / person).mkdir()
        for number in range(1, 10):
            (root / person / f"{number}.pgm").symlink_to(att_dir / person / f"{number}.pgm")
    return root


@pytest.fixture(scope="session")
def att_pipeline(facenet_encoder):
    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline

    return FacePipeline(facenet_encoder, FaceExtractor(facenet_encoder.input_size, None))


@pytest.fixture(scope="session")
def att_index_dir(att_photos, att_pipeline, tmp_path_factory) -> Path:
    from embedkit.index import FaceIndex

    folder = tmp_path_factory.mktemp("att-index")
    with FaceIndex.create(folder) as index:
        report = index.update(att_photos, att_pipeline, labels=True,
                              source={"backbone": "facenet", "no_detect": True, "detector": "yunet"})
    assert report.total_faces == 90 and not report.errors
    return folder


@pytest.fixture
def make_app(att_index_dir, att_pipeline, tmp_path):
    """``make_app(**create_app_options)`` -> (app, open index); indexes are closed after the test."""
    from embedkit.index import FaceIndex
    from embedkit.server.app import create_app, warm_up
    from embedkit.server.thumbnails import Thumbnails

    opened = []

    def make(index_dir=att_index_dir, **options):
        index = FaceIndex.open(index_dir)
        opened.append(index)
        warm_up(index, att_pipeline)
        options.setdefault("thumbnails", Thumbnails(tmp_path / "thumbnails"))
        return create_app(index, att_pipeline, **options), index

    yield make
    for index in opened:
        index.close()


@pytest.fixture
def people_index_dir(att_index_dir, tmp_path) -> Path:
    """A copy of the AT&T index with its faces grouped into people (as `embedkit cluster` does)."""
    import shutil

    from embedkit.index import FaceIndex
    from embedkit.people import cluster

    folder = tmp_path / "people-index"
    shutil.copytree(att_index_dir, folder)
    with FaceIndex.open(folder) as index:
        cluster(index)
    return folder
