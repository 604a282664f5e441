import shutil

import numpy as np
import pytest

from embedkit.errors import IndexMismatchError
from embedkit.faces import FaceExtractor
from embedkit.index import FaceIndex
from embedkit.pipeline import FacePipeline
from embedkit.search import query_image

PEOPLE = [f"s{i}" for i in range(1, 11)]


@pytest.fixture(scope="module")
def att_gallery(att_dir, tmp_path_factory):
    """Images 1-9 of ten AT&T people, one folder per person; image 10 is held out."""
    root = tmp_path_factory.mktemp("gallery")
    for person in PEOPLE:
        (root / person).mkdir()
        for i in range(1, 10):
            shutil.copy(att_dir / person / f"{i}.pgm", root / person / f"{i}.pgm")
    return root


@pytest.fixture(scope="module")
def no_detect_pipeline(facenet_encoder):
    return FacePipeline(facenet_encoder, FaceExtractor(160, detector=None))


def test_index_then_query_finds_the_right_person(att_gallery, att_dir, no_detect_pipeline, tmp_path):
    with FaceIndex.create(tmp_path / "idx") as index:
        report = index.update(att_gallery, no_detect_pipeline, labels=True)
        assert report.embedded_files == 90 and report.faces_added == 90 and not report.errors
        hits = 0
        for person in PEOPLE:
            faces = query_image(index, no_detect_pipeline, att_dir / person / "10.pgm", k=3)
            assert len(faces) == 1 and len(faces[0]["matches"]) == 3
            top = faces[0]["matches"][0]
            assert top["path"].startswith(str(att_gallery)) and set(top) >= {"score", "path", "box", "label"}
            hits += top["label"] == person
        assert hits >= 9
        assert index.verify()["ok"]


def test_rerun_embeds_only_what_changed(att_gallery, no_detect_pipeline, tmp_path):
    gallery = tmp_path / "photos"
    shutil.copytree(att_gallery / "s1", gallery / "s1")
    shutil.copytree(att_gallery / "s2", gallery / "s2")
    with FaceIndex.create(tmp_path / "idx") as index:
        first = index.update(gallery, no_detect_pipeline, labels=True)
        assert first.embedded_files == 18
        again = index.update(gallery, no_detect_pipeline, labels=True)
        assert again.embedded_files == 0 and again.unchanged == 18
        # move one photo, delete another, add a new one
        (gallery / "s1" / "1.pgm").rename(gallery / "s2" / "moved.pgm")
        (gallery / "s2" / "2.pgm").unlink()
        shutil.copy(att_gallery / "s3" / "1.pgm", gallery / "s1" / "new.pgm")
        third = index.update(gallery, no_detect_pipeline, labels=True)
        assert third.embedded_files == 1 and third.reused_files == 1 and third.removed_files == 2
        assert third.faces_removed == 1 and third.total_faces == 18
        assert index.verify()["ok"]
        moved = index.search(no_detect_pipeline.embed_file(gallery / "s2" / "moved.pgm").embeddings, k=1)[0][0]
        assert moved["path"].endswith("moved.pgm") and moved["label"] == "s2" and moved["score"] > 0.999


def test_a_different_model_is_refused(att_gallery, no_detect_pipeline, tiny_encoder, tmp_path):
    with FaceIndex.create(tmp_path / "idx") as index:
        index.update(att_gallery / "s1", no_detect_pipeline)
        other = FacePipeline(tiny_encoder, FaceExtractor(32, detector=None))
        with pytest.raises(IndexMismatchError, match="built with model"):
            index.update(att_gallery / "s1", other)
        with pytest.raises(IndexMismatchError):
            index.search(np.ones((1, 64), np.float32))
        detecting = FacePipeline(no_detect_pipeline.encoder)
        with pytest.raises(IndexMismatchError, match="face settings"):
            index.update(att_gallery / "s1", detecting)


def test_approximate_factory_and_switching_factories(att_gallery, no_detect_pipeline, tmp_path):
    with FaceIndex.create(tmp_path / "idx") as index:
        index.update(att_gallery, no_detect_pipeline, factory="HNSW16", search_params="efSearch=64")
        query = no_detect_pipeline.embed_file(att_gallery / "s4" / "3.pgm").embeddings
        assert index.search(query, 1)[0][0]["score"] > 0.999
        index.update(att_gallery, no_detect_pipeline, factory="IDMap,Flat")
        assert index.factory == "IDMap,Flat" and index.verify()["ok"]
        assert index.search(query, 1)[0][0]["path"].endswith("s4/3.pgm")
