"""One local Ray runtime (2 CPUs) and one pair of embedding actors for the whole session:
Ray and TensorFlow start-up cost seconds each."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import ray  # in the test extra

from embedkit.distributed.ray_embed import start_local_runtime

# A small seeded random encoder with YuNet detection: real boxes, deterministic embeddings.
SOURCE = {"backbone": "simple", "model_dir": None, "weights": "random", "detector": "yunet",
          "no_detect": False, "center_crop": 1.0, "flip": False}
WORKERS = 2


@pytest.fixture(scope="session")
def ray_runtime():
    """A local Ray runtime. One CPU more than the session's actors, so that a second
    driver (the kill -9 test's) can run one actor of its own beside them."""
    # Ray kills workers when the node's memory is 95% used, whoever uses it: not in tests on shared machines.
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    start_local_runtime(WORKERS + 1)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def pipeline():
    from embedkit.pipeline import pipeline_from_source

    return pipeline_from_source(SOURCE, batch_size=16)


@pytest.fixture(scope="session")
def ray_embedder(ray_runtime, pipeline):
    from embedkit.distributed import RayEmbedder

    with RayEmbedder(SOURCE, batch_size=16, workers=WORKERS, chunk=8) as embedder:
        yield embedder.start(pipeline)


@pytest.fixture(scope="session")
def photos(tmp_path_factory, att_dir, lfw_dir) -> Path:
    """40 AT&T photos (4 people) and 60 LFW photos (the first people with 2+ photos, by name)."""
    root = tmp_path_factory.mktemp("ray-photos")
    for person in ("s1", "s2", "s3", "s4"):
        shutil.copytree(att_dir / person, root / "att" / person)
    copied = 0
    for person in sorted(p for p in lfw_dir.iterdir() if p.is_dir()):
        images = sorted(person.glob("*.jpg"))
        if len(images) < 2:
            continue
        for image in images[: 60 - copied]:
            (root / "lfw" / person.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(image, root / "lfw" / person.name / image.name)
            copied += 1
        if copied >= 60:
            break
    return root


@pytest.fixture(scope="session")
def reference(tmp_path_factory, photos, pipeline) -> Path:
    """The index the single-process path builds."""
    from embedkit.index import FaceIndex

    folder = tmp_path_factory.mktemp("reference-index")
    with FaceIndex.create(folder) as index:
        report = index.update(photos, pipeline, labels=True, source=SOURCE)
    assert report.total_files == 100 and not report.errors
    return folder
