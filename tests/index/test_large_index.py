"""What lets an index grow to millions of faces: IVF indexes keep their own ids and
are memory-mapped for searching, compressed codes are rescored from the store,
and a search never reads every stored vector from SQLite."""

from __future__ import annotations

import shutil

import faiss
import numpy as np
import pytest

from embedkit.faces import FaceExtractor
from embedkit.index import FaceIndex
from embedkit.index import face_index
from embedkit.index.store import MetadataStore
from embedkit.pipeline import FacePipeline

FACTORY = "IVF4,PQ16x4"  # 4 lists, 16 codes of 4 bits: a tiny index with lossy codes


@pytest.fixture(scope="module")
def gallery(att_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    for n in range(1, 11):
        shutil.copytree(att_dir / f"s{n}", root / f"s{n}")
    return root


@pytest.fixture(scope="module")
def pipeline(facenet_encoder):
    return FacePipeline(facenet_encoder, FaceExtractor(facenet_encoder.input_size, detector=None))


@pytest.fixture
def ivf_index(gallery, pipeline, tmp_path):
    with FaceIndex.create(tmp_path / "index") as index:
        report = index.update(gallery, pipeline, labels=True, factory=FACTORY, search_params="nprobe=4")
        assert report.total_faces == 100
    return tmp_path / "index"


def _stored_vector(index: FaceIndex, path) -> np.ndarray:
    db = index.store.db
    blob = db.execute("SELECT vector FROM faces JOIN files USING(sha256) WHERE path = ?", (str(path),)).fetchone()[0]
    return np.frombuffer(blob, np.float32)


def test_ivf_index_is_memory_mapped_and_rescored(ivf_index, gallery):
    with FaceIndex.open(ivf_index) as index:
        assert index.verify()["ok"]  # the ids FAISS keeps in its inverted lists match the store
        query = _stored_vector(index, gallery / "s7" / "3.pgm")
        matches = index.search(query, k=5)[0]
        searched, _ = index._index_for(index.store.generation)
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(searched).invlists)
        assert isinstance(lists, faiss.OnDiskInvertedLists)  # mapped from the file, not read into memory
        # 4-bit codes alone score a face against itself well below 1; the store's vectors give exact scores.
        assert matches[0]["path"] == str(gallery / "s7" / "3.pgm") and matches[0]["score"] == pytest.approx(1, abs=1e-4)
        for match in matches:
            exact = float(_stored_vector(index, match["path"]) @ query)
            assert match["score"] == pytest.approx(exact, abs=1e-4)
        assert [m["score"] for m in matches] == sorted((m["score"] for m in matches), reverse=True)


def test_a_large_index_never_reads_all_vectors(ivf_index, gallery, monkeypatch):
    """With no FAISS file for the committed state (an update under way or killed), a large index
    searches the last file written, without the faces deleted since, and reads no vectors in bulk."""
    removed = gallery / "s7" / "3.pgm"
    with FaceIndex.open(ivf_index) as index:
        query = _stored_vector(index, removed)
        store = index.store
        store.begin_write()  # what a killed update leaves: a committed change and no FAISS file for it
        store.remove_file(str(removed))
        store.drop_orphans()
        store.bump_generation()
        store.commit()

    monkeypatch.setattr(face_index, "EXACT_FALLBACK_FACES", 50)  # "large": more faces than this

    def read_all(*args):
        raise AssertionError("all vectors read from SQLite")

    monkeypatch.setattr(MetadataStore, "all_vectors", read_all)
    with FaceIndex.open(ivf_index) as index:
        matches = index.search(query, k=5)[0]
    assert len(matches) == 5 and str(removed) not in [m["path"] for m in matches]
    assert matches[0]["label"] == "s7"


def test_pq_training_skips_polysemous_annealing_unless_ht_is_set(ivf_index):
    """FAISS's factory turns on polysemous training for PQ codes (minutes of annealing
    for PQ32 at any size); without ``ht`` no search uses it, so embedkit turns it off
    and the index is the one the ``np`` ("no polysemous") factory makes."""
    from embedkit.index import vectors as vec

    with FaceIndex.open(ivf_index) as index:
        ids, vectors = zip(*((i, np.frombuffer(blob, np.float32))
                             for i, blob in index.store.db.execute("SELECT id, vector FROM faces ORDER BY id")))
    ids, vectors = np.array(ids, np.int64), np.stack(vectors)
    assert faiss.index_factory(vectors.shape[1], FACTORY).do_polysemous_training  # FAISS's default

    built = vec.build_index(FACTORY, vectors.shape[1], ids, vectors, "nprobe=4")
    assert not faiss.downcast_index(faiss.extract_index_ivf(built)).do_polysemous_training
    plain = faiss.index_factory(vectors.shape[1], FACTORY + "np", faiss.METRIC_INNER_PRODUCT)
    plain.train(vectors)
    plain.add_with_ids(vectors, ids)
    plain.nprobe = 4
    assert np.array_equal(vec.search(built, vectors, 5)[1], plain.search(vectors, 5)[1])

    # A Hamming threshold (polysemous search) needs the polysemous codes: then FAISS's training stays on.
    with_ht = vec.build_index(FACTORY, vectors.shape[1], ids, vectors, "nprobe=4,ht=30")
    assert faiss.downcast_index(faiss.extract_index_ivf(with_ht)).do_polysemous_training
