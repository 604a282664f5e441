"""The bundled demo: index the sample faces, then query and compare.

Runs with no set-up: the sample photos ship with embedkit and the facenet
weights are fetched on first use.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from embedkit.compare import compare_files
from embedkit.index import FaceIndex
from embedkit.pipeline import FacePipeline
from embedkit.search import query_image


def samples_dir() -> Path:
    return Path(str(resources.files("embedkit").joinpath("samples")))


def run_demo(pipeline: FacePipeline, index_folder, k: int = 3) -> dict:
    """Index ``samples/people``, query each photo in ``samples/queries``, compare two of them."""
    samples = samples_dir()
    with FaceIndex.create(index_folder) as index:
        report = index.update(samples / "people", pipeline, labels=True)
        queries = []
        for path in sorted((samples / "queries").iterdir()):
            faces = query_image(index, pipeline, path, k)
            expected = path.name.split("_")[0]
            best = faces[0]["matches"][0] if faces and faces[0]["matches"] else None
            queries.append({"query": str(path), "expected": expected,
                            "found": best["label"] if best else None, "faces": faces})
    same = compare_files(pipeline, samples / "people" / "s2" / "1.pgm", samples / "queries" / "s2_8.pgm")
    different = compare_files(pipeline, samples / "people" / "s1" / "1.pgm", samples / "queries" / "s2_8.pgm")
    return {"index": report.to_dict(), "queries": queries,
            "compare_same": same.to_dict(), "compare_different": different.to_dict()}
