"""Speed of embedkit on this CPU, stage by stage, on real LFW photos.

* decode: ``read_image`` (JPEG 250x250 -> RGB array), one thread;
* detection: YuNet and MTCNN on decoded photos, one thread;
* embedding alone: ``Encoder.encode`` on aligned 160x160 crops, batches of 64;
* end to end: ``FacePipeline.embed_files`` (decode, detect, align, embed)
  with its default worker threads;
* indexing: ``FaceIndex.update`` of all 13,233 LFW photos into a fresh
  temporary index (what ``embedkit index`` does);
* query latency against that index, p50 and p99: the FAISS search plus
  metadata lookup of one embedding (``FaceIndex.search``), and a whole
  ``embedkit query`` of one photo (``search.query_image``: decode, detect,
  embed, search), both in a warm process.

    python benchmarks/bench_speed.py            # full run (indexing takes minutes)
    python benchmarks/bench_speed.py --quick    # smoke run: small samples, 300-photo index
    python benchmarks/bench_speed.py --index-photos 2000

The machine's load average is recorded with the figures: other jobs on the
same cores slow every stage.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.results import markdown_table, write_json, write_section  # noqa: E402

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
LFW = FACES / "lfw" / "lfw-deepfunneled"


def lfw_photos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jpg"))


def spread(items: list, n: int) -> list:
    """``n`` items evenly spread over the list (deterministic)."""
    if n >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).astype(int)]


def link_subset(photos: list[Path], root: Path, target: Path) -> Path:
    """A folder of symlinks to ``photos`` keeping their ``person/`` subfolders."""
    for photo in photos:
        link = target / photo.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(photo)
    return target


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else float("inf")


def percentiles_ms(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)),
                                                                             3), "n": len(samples)}


def bench_decode(photos) -> dict:
    from embedkit.faces import read_image

    started = time.perf_counter()
    images = [read_image(p) for p in photos]
    return {"images_per_second": rate(len(photos), time.perf_counter() - started), "n": len(photos),
            "threads": 1}, images


def bench_detect(name: str, images) -> dict:
    from embedkit.faces import get_detector

    detector = get_detector(name)
    detector.detect(images[0])  # load the model
    started = time.perf_counter()
    found = sum(bool(detector.detect(image)) for image in images)
    return {"images_per_second": rate(len(images), time.perf_counter() - started), "n": len(images),
            "with_face": found, "threads": 1}


def bench_embed(encoder, images, batch_size: int = 64) -> dict:
    from embedkit.faces import FaceExtractor

    extractor = FaceExtractor(encoder.input_size, None, 0.7)
    crops = np.stack([extractor.from_image(image)[0].crop for image in images])
    encoder.encode(crops[:batch_size], batch_size)  # trace the graph once
    started = time.perf_counter()
    encoder.encode(crops, batch_size)
    return {"faces_per_second": rate(len(crops), time.perf_counter() - started), "n": len(crops),
            "batch_size": batch_size}


def bench_end_to_end(pipeline, photos) -> dict:
    started = time.perf_counter()
    n_faces = sum(len(result.faces) for result in pipeline.embed_files(photos))
    return {"photos_per_second": rate(len(photos), time.perf_counter() - started), "n": len(photos),
            "faces": n_faces, "workers": pipeline.workers, "batch_size": pipeline.batch_size}


def bench_index_and_query(pipeline, photos: list[Path], n_queries: int, work: Path) -> dict:
    from embedkit.index import FaceIndex
    from embedkit.search import query_image

    root = LFW if len(photos) == len(lfw_photos(LFW)) else link_subset(photos, LFW, work / "photos")
    with FaceIndex.create(work / "index") as index:
        started = time.perf_counter()
        report = index.update(root, pipeline, labels=True)
        seconds = time.perf_counter() - started
        indexing = {"photos": report.total_files, "faces": report.total_faces, "seconds": round(seconds, 1),
                    "photos_per_second": rate(report.total_files, seconds), "errors": len(report.errors),
                    "factory": index.factory}

    queries = spread(photos, n_queries)
    with FaceIndex.open(work / "index") as index:
        embeddings = [r.embeddings[0] for r in pipeline.embed_files(queries) if len(r.faces)]
        index.search(embeddings[0], 5)  # load the FAISS file
        search_times = []
        for _ in range(3):
            for embedding in embeddings:
                started = time.perf_counter()
                index.search(embedding, 5)
                search_times.append(time.perf_counter() - started)
        query_image(index, pipeline, queries[0], 5)  # warm
        query_times = []
        for path in queries:
            started = time.perf_counter()
            query_image(index, pipeline, path, 5)
            query_times.append(time.perf_counter() - started)
    return {"index": indexing, "search": percentiles_ms(search_times), "query_image": percentiles_ms(query_times)}


def markdown(results: dict, command: str) -> str:
    r = results
    rows = [
        {"stage": "decode (read_image, 1 thread)", "rate": f"{r['decode']['images_per_second']:.1f} images/s",
         "n": r["decode"]["n"]},
        {"stage": "detect: YuNet (1 thread)", "rate": f"{r['detect_yunet']['images_per_second']:.1f} images/s",
         "n": r["detect_yunet"]["n"]},
    ]
    if r.get("detect_mtcnn"):
        rows.append({"stage": "detect: MTCNN (1 thread)",
                     "rate": f"{r['detect_mtcnn']['images_per_second']:.1f} images/s", "n": r["detect_mtcnn"]["n"]})
    rows += [
        {"stage": f"embed alone (facenet, batches of {r['embed']['batch_size']})",
         "rate": f"{r['embed']['faces_per_second']:.1f} faces/s", "n": r["embed"]["n"]},
        {"stage": f"end to end (FacePipeline, yunet, {r['end_to_end']['workers']} workers)",
         "rate": f"{r['end_to_end']['photos_per_second']:.1f} photos/s", "n": r["end_to_end"]["n"]},
    ]
    ix = r["index_query"]["index"]
    rows.append({"stage": f"index {ix['photos']:,} LFW photos (FaceIndex.update, {ix['factory']})",
                 "rate": f"{ix['seconds']:.0f} s = {ix['photos_per_second']:.1f} photos/s", "n": ix["photos"]})
    s, q = r["index_query"]["search"], r["index_query"]["query_image"]
    rows.append({"stage": f"search one face, k=5 ({ix['faces']:,} faces)",
                 "rate": f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms", "n": s["n"]})
    rows.append({"stage": "query one photo end to end (decode, detect, embed, search)",
                 "rate": f"p50 {q['p50_ms']:.1f} ms, p99 {q['p99_ms']:.1f} ms", "n": q["n"]})
    load = r["load_average"]
    return "\n".join([
        "### Speed on this CPU",
        "",
        "Pretrained `facenet`, YuNet detection, LFW deep-funneled photos (250x250 JPEG). "
        f"Load average before/after the run: {load['before']} / {load['after']} "
        f"(other jobs were sharing the {os.cpu_count()} cores when it is above the core count).",
        "",
        markdown_table(rows, ["stage", "rate", "n"]),
        "",
        f"Command: `{command}`",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Small samples: a smoke run.")
    parser.add_argument("--sample", type=int, default=500, help="Photos for the per-stage figures.")
    parser.add_argument("--index-photos", type=int, default=None, help="Index only this many photos (default all).")
    parser.add_argument("--queries", type=int, default=100, help="Query photos for the latency figures.")
    parser.add_argument("--no-mtcnn", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    args = parser.parse_args(argv)
    if args.quick:
        args.sample, args.queries = 40, 20
        args.index_photos = args.index_photos or 300

    from embedkit.encoder import Encoder
    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline

    command = "python benchmarks/bench_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    photos = lfw_photos(LFW)
    sample = spread(photos, args.sample)
    results = {"load_average": {"before": round(os.getloadavg()[0], 2)}}

    results["decode"], images = bench_decode(sample)
    print("decode", results["decode"], flush=True)
    results["detect_yunet"] = bench_detect("yunet", images)
    print("yunet", results["detect_yunet"], flush=True)
    if not args.no_mtcnn:
        results["detect_mtcnn"] = bench_detect("mtcnn", images[: max(10, len(images) // 5)])
        print("mtcnn", results["detect_mtcnn"], flush=True)
    encoder = Encoder.from_backbone("facenet")
    results["embed"] = bench_embed(encoder, images)
    print("embed", results["embed"], flush=True)
    pipeline = FacePipeline(encoder, FaceExtractor(encoder.input_size, "yunet"))
    bench_end_to_end(pipeline, sample[:16])  # warm the threads' detectors
    results["end_to_end"] = bench_end_to_end(pipeline, sample)
    print("end to end", results["end_to_end"], flush=True)

    to_index = spread(photos, args.index_photos) if args.index_photos else photos
    with tempfile.TemporaryDirectory(prefix="embedkit-bench-") as work:
        results["index_query"] = bench_index_and_query(pipeline, to_index, args.queries, Path(work))
    print("index/query", results["index_query"], flush=True)
    results["load_average"]["after"] = round(os.getloadavg()[0], 2)
    results["command"] = command

    if not args.no_write and not args.quick:
        write_json("speed", results)
        write_section("speed", markdown(results, command))
    else:
        print(markdown(results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
