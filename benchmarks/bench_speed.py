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


class Clock:
    """Wall time and this process's CPU time (all threads) of a block.

    CPU time per item does not grow when other jobs share the cores, so
    ``cores * 1000 / cpu_ms`` estimates the rate on otherwise idle cores
    (an estimate: it assumes the work spreads over all cores).
    """

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def figures(self, count: int, unit: str) -> dict:
        cpu_ms = 1000 * self.cpu / count
        return {f"{unit}_per_second": rate(count, self.wall), "cpu_ms_per_item": round(cpu_ms, 2),
                f"idle_estimate_{unit}_per_second": round(CORES * 1000 / cpu_ms, 1), "n": count}


CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def percentiles_ms(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)),
                                                                             3), "n": len(samples)}


def bench_decode(photos) -> dict:
    from embedkit.faces import read_image

    with Clock() as clock:
        images = [read_image(p) for p in photos]
    return {**clock.figures(len(photos), "images"), "threads": 1}, images


def bench_detect(name: str, images) -> dict:
    from embedkit.faces import get_detector

    detector = get_detector(name)
    detector.detect(images[0])  # load the model
    with Clock() as clock:
        found = sum(bool(detector.detect(image)) for image in images)
    return {**clock.figures(len(images), "images"), "with_face": found, "threads": 1}


def bench_embed(encoder, images, batch_size: int = 64) -> dict:
    from embedkit.faces import FaceExtractor

    extractor = FaceExtractor(encoder.input_size, None, 0.7)
    crops = np.stack([extractor.from_image(image)[0].crop for image in images])
    encoder.encode(crops[:batch_size], batch_size)  # trace the graph once
    with Clock() as clock:
        encoder.encode(crops, batch_size)
    return {**clock.figures(len(crops), "faces"), "batch_size": batch_size}


def bench_end_to_end(pipeline, photos) -> dict:
    with Clock() as clock:
        n_faces = sum(len(result.faces) for result in pipeline.embed_files(photos))
    return {**clock.figures(len(photos), "photos"), "faces": n_faces, "workers": pipeline.workers,
            "batch_size": pipeline.batch_size}


def bench_index_and_query(pipeline, photos: list[Path], n_queries: int, work: Path) -> dict:
    from embedkit.index import FaceIndex
    from embedkit.search import query_image

    root = LFW if len(photos) == len(lfw_photos(LFW)) else link_subset(photos, LFW, work / "photos")
    with FaceIndex.create(work / "index") as index:
        with Clock() as clock:
            report = index.update(root, pipeline, labels=True)
        indexing = {"photos": report.total_files, "faces": report.total_faces, "seconds": round(clock.wall, 1),
                    **clock.figures(report.total_files, "photos"), "errors": len(report.errors),
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
        # FAISS parallelises even a one-vector search with OpenMP; on busy cores the
        # threads' hand-offs dominate. Measured again on one thread for comparison.
        import faiss

        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        one_thread = []
        for embedding in embeddings:
            started = time.perf_counter()
            index.search(embedding, 5)
            one_thread.append(time.perf_counter() - started)
        faiss.omp_set_num_threads(threads)
        query_image(index, pipeline, queries[0], 5)  # warm
        query_times = []
        for path in queries:
            started = time.perf_counter()
            query_image(index, pipeline, path, 5)
            query_times.append(time.perf_counter() - started)
    return {"index": indexing, "search": percentiles_ms(search_times), "search_faiss_1_thread": percentiles_ms(one_thread),
            "faiss_threads": threads, "query_image": percentiles_ms(query_times)}


def markdown(results: dict, command: str) -> str:
    r = results

    def stage(name: str, figures: dict, unit: str, threads: str) -> dict:
        return {"stage": name, "measured": f"{figures[unit + '_per_second']:.1f} {unit}/s",
                "CPU ms per item": f"{figures['cpu_ms_per_item']:.1f}",
                f"estimate on {CORES} idle cores": f"{figures['idle_estimate_' + unit + '_per_second']:.0f} {unit}/s"
                                                   + threads, "n": figures["n"]}

    rows = [stage("decode (read_image)", r["decode"], "images", " (1 thread)"),
            stage("detect: YuNet", r["detect_yunet"], "images", " (1 thread per core)")]
    if r.get("detect_mtcnn"):
        rows.append(stage("detect: MTCNN", r["detect_mtcnn"], "images", ""))
    rows.append(stage(f"embed alone (facenet, batches of {r['embed']['batch_size']})", r["embed"], "faces", ""))
    e2e = r["end_to_end"]
    rows.append(stage(f"end to end (FacePipeline: decode, YuNet, align, embed; {e2e['workers']} reader threads)",
                      e2e, "photos", ""))
    ix = r["index_query"]["index"]
    rows.append(stage(f"index {ix['photos']:,} LFW photos (FaceIndex.update, {ix['factory']}): {ix['seconds']:.0f} s",
                      ix, "photos", ""))
    s, q = r["index_query"]["search"], r["index_query"]["query_image"]
    s1 = r["index_query"]["search_faiss_1_thread"]
    load = r["load_average"]
    return "\n".join([
        "### Speed on this CPU",
        "",
        "Pretrained `facenet`, YuNet detection, LFW deep-funneled photos (250x250 JPEG, about 1.15 faces each). "
        f"Load average (1 min) before / after the run: {load['before']} / {load['after']} on {CORES} cores"
        + (": other jobs shared the cores, so 'measured' rates are lower bounds. " if load["before"] > CORES / 2
           else " (the cores were otherwise idle). ")
        + "The estimate divides the cores by the process's CPU time per item (CPU time does not grow with other "
        "jobs' load).",
        "",
        markdown_table(rows),
        "",
        f"Query latency against the index of {ix['faces']:,} faces (warm process, {s['n']} / {q['n']} queries):",
        "",
        "| query | p50 | p99 |",
        "|---|---|---|",
        f"| search one face, k=5 (`FaceIndex.search`: FAISS + metadata) | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms |",
        f"| the same search with FAISS on 1 OpenMP thread (default: {r['index_query']['faiss_threads']}) | "
        f"{s1['p50_ms']:.2f} ms | {s1['p99_ms']:.2f} ms |",
        f"| `embedkit query` of one photo (decode, detect, embed, search) | {q['p50_ms']:.1f} ms | {q['p99_ms']:.1f} ms |",
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
    parser.add_argument("--rewrite", action="store_true", help="Only re-render RESULTS.md from results/speed.json.")
    args = parser.parse_args(argv)
    if args.rewrite:
        import json

        from benchmarks.results import RESULTS_JSON_DIR

        saved = json.loads((RESULTS_JSON_DIR / "speed.json").read_text())["results"]
        write_section("speed", markdown(saved, saved["command"]))
        return 0
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
