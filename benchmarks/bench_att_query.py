"""Leave-one-out rank-1 of `embedkit query` over all 400 AT&T faces.

Indexes the 40 people x 10 photos of ../shared/faces/att with pretrained
facenet (through FaceIndex, as `embedkit index` does), then queries every
photo against the index and counts how often the best match other than the
photo itself shows the same person. Run:

    python benchmarks/bench_att_query.py [--detect]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from results import markdown_table, write_json, write_section  # noqa: E402

from embedkit.encoder import Encoder  # noqa: E402
from embedkit.faces import FaceExtractor  # noqa: E402
from embedkit.index import FaceIndex  # noqa: E402
from embedkit.pipeline import FacePipeline  # noqa: E402

ATT = Path(__file__).resolve().parents[1].parent / "shared" / "faces" / "att"


def leave_one_out(pipeline: FacePipeline, k: int = 5) -> dict:
    with tempfile.TemporaryDirectory() as tmp, FaceIndex.create(tmp) as index:
        started = time.perf_counter()
        report = index.update(ATT, pipeline, labels=True)
        index_seconds = time.perf_counter() - started
        ids, vectors = index.store.all_vectors(index.dim)
        described = index.store.describe_faces(ids)
        labels = [described[i]["label"] for i in ids]
        hits, recall, latencies = 0, 0, []
        for face_id, vector, label in zip(ids, vectors, labels):
            started = time.perf_counter()
            matches = index.search(vector[None], k + 1)[0]
            latencies.append(time.perf_counter() - started)
            others = [m for m in matches if m["face_id"] != face_id][:k]
            hits += others[0]["label"] == label
            recall += any(m["label"] == label for m in others)
    n = len(ids)
    return {"faces": n, "files_without_faces": report.files_without_faces, "rank1": hits / n,
            f"recall@{k}": recall / n, "index_seconds": round(index_seconds, 2),
            "search_ms_p50": round(1000 * float(np.median(latencies)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    encoder = Encoder.from_backbone("facenet")
    rows = []
    for name, detector in (("no detection (whole image)", None), ("YuNet detection + alignment", "yunet")):
        result = leave_one_out(FacePipeline(encoder, FaceExtractor(encoder.input_size, detector)))
        result["setting"] = name
        rows.append(result)
        print(result, flush=True)
    write_json("att_query", rows)
    body = ("Leave-one-out rank-1 of `query` over all 400 AT&T faces, pretrained `facenet`, exact "
            "`IDMap,Flat` index (`python benchmarks/bench_att_query.py`).\n\n"
            + markdown_table(rows, ["setting", "faces", "files_without_faces", "rank1", "recall@5",
                                    "index_seconds", "search_ms_p50"]))
    write_section("att_query", body)


if __name__ == "__main__":
    main()
