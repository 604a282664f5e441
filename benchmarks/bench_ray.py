"""Indexing photos through Ray on this machine, against one process, and the
projection to a cluster.

Real LFW photos (``--photos``, spread evenly over the 13,233), the default
pipeline (YuNet detection, facenet), each run into a fresh temporary index with
``FaceIndex.update`` (what ``embedkit index`` does: walk, hash, detect, align,
embed, commit):

* single process: ``embedkit index DIR`` (the pipeline's reader threads + TensorFlow);
* Ray, 1 worker: ``--ray --ray-workers 1``, the actor given all the cores;
* Ray, 2 workers: ``--ray --ray-workers 2``, one core each.
* Ray Data, 1 and 2 workers (``--ray-data``; needs ``ray[data]``): the same
  work as ``map_batches`` over an actor pool of that size (one encoder per
  actor, the shipped path's ``EmbedWorker``), hashing as Ray Data tasks,
  results read back in order (``preserve_order``). Not the shipped path: it is
  here to compare the two designs in one run.

Ray's start-up (runtime and actors loading the model) is timed apart: it is
paid once per run, not per photo. Ray Data starts its actor pool inside the
timed run (a dataset owns its pool), so its rows also give the rate without
that start-up: (photos - 1) / (run time - time of the same pipeline on 1 photo),
an estimate. Ray's overhead is ``1 - Ray rate / single
rate``. The writer alone is timed by replaying the embeddings of the first run
(no hashing or embedding): that is the most one writer can commit, the ceiling
of the projection to N machines (N x the per-machine Ray rate, at most the
writer's rate), which is a projection, not a measurement of a cluster.

    python benchmarks/bench_ray.py                # 600 photos per run (minutes)
    python benchmarks/bench_ray.py --ray-data     # and the Ray Data variant
    python benchmarks/bench_ray.py --photos 100 --no-write   # smoke run

Writes section ``ray`` of benchmarks/RESULTS.md and benchmarks/results/ray.json
(unless --no-write). Timings depend on machine load, which is recorded.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_speed import CORES, LFW, link_subset, lfw_photos, spread  # noqa: E402
from benchmarks.results import markdown_table, write_json, write_section  # noqa: E402

SOURCE = {"backbone": "facenet", "model_dir": None, "weights": "pretrained", "detector": "yunet",
          "no_detect": False, "center_crop": 1.0, "flip": False}
MACHINES = (1, 2, 4, 8, 16, 32, 64)
ARCHIVE = 10_000_000


def _load() -> float:
    return round(os.getloadavg()[0], 2)


class Replay:
    """An embedder that hands back what an earlier run computed: the writer alone is timed."""

    def __init__(self, hashes: dict, results: dict):
        self.hashes, self.results = hashes, results

    def hash_files(self, paths):
        return ((self.hashes[str(p)], None) for p in paths)

    def embed_files(self, paths):
        return (self.results[str(p)] for p in paths)


class Recorder:
    """Wraps a pipeline and keeps what it hashed and embedded (for :class:`Replay`)."""

    def __init__(self, pipeline):
        self.pipeline, self.hashes, self.results = pipeline, {}, {}

    def hash_files(self, paths):
        paths = [str(p) for p in paths]
        for path, (sha, reason) in zip(paths, self.pipeline.hash_files(paths)):
            self.hashes[path] = sha
            yield sha, reason

    def embed_files(self, paths):
        for result in self.pipeline.embed_files(paths):
            self.results[result.path] = result
            yield result


def _objects(items: list) -> np.ndarray:
    """A 1-d object column (Ray Data keeps Python objects as pickles in Arrow)."""
    column = np.empty(len(items), dtype=object)
    for n, item in enumerate(items):
        column[n] = item
    return column


def _hash_batch(batch: dict) -> dict:
    from embedkit.hashing import hash_files

    return {"result": _objects(list(hash_files(batch["path"].tolist())))}


class _EmbedBatch:
    """One actor of the Ray Data pool: the shipped path's worker (one encoder) over a batch of paths."""

    def __init__(self, source: dict, batch_size: int, threads: int):
        from embedkit.distributed.ray_embed import EmbedWorker

        self.worker = EmbedWorker(source, batch_size, threads)

    def __call__(self, batch: dict) -> dict:
        return {"result": _objects(self.worker.embed(batch["path"].tolist()))}


class RayDataEmbedder:
    """The Embedder as Ray Data: ``map_batches`` over an actor pool of ``workers``, results in order."""

    def __init__(self, source: dict, batch_size: int, workers: int, cpus_per_worker: int, chunk: int = 32):
        import ray.data

        self.ray_data = ray.data
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        self.source, self.batch_size, self.workers = source, batch_size, workers
        self.cpus_per_worker, self.chunk = cpus_per_worker, chunk

    def _dataset(self, paths):
        paths = [str(p) for p in paths]
        return self.ray_data.from_items([{"path": p} for p in paths],
                                        override_num_blocks=max(1, -(-len(paths) // self.chunk)))

    def hash_files(self, paths):
        return (row["result"] for row in self._dataset(paths).map_batches(
            _hash_batch, batch_size=self.chunk, batch_format="numpy", num_cpus=1).iter_rows())

    def embed_files(self, paths):
        stage = self._dataset(paths).map_batches(
            _EmbedBatch, fn_constructor_args=(self.source, self.batch_size, self.cpus_per_worker),
            batch_size=self.chunk, batch_format="numpy", compute=self.ray_data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.cpus_per_worker)
        return (row["result"] for row in stage.iter_rows())


def timed_update(pipeline, photos_dir: Path, work: Path, name: str, embedder) -> dict:
    from embedkit.index import FaceIndex

    load_before = _load()
    with FaceIndex.create(work / name) as index:
        started = time.perf_counter()
        report = index.update(photos_dir, pipeline, labels=True, embedder=embedder)
        seconds = time.perf_counter() - started
    row = {"run": name, "photos": report.embedded_files, "faces": report.faces_added, "seconds": round(seconds, 1),
           "photos_per_s": round(report.embedded_files / seconds, 2), "errors": len(report.errors),
           "load_before": load_before, "load_after": _load()}
    print(row, flush=True)
    return row


def bench(args) -> dict:
    import ray

    from embedkit.distributed import RayEmbedder
    from embedkit.distributed.ray_embed import start_local_runtime
    from embedkit.pipeline import pipeline_from_source

    photos = spread(lfw_photos(LFW), args.photos)
    pipeline = pipeline_from_source(SOURCE)
    warm = photos[:16]
    list(pipeline.embed_files(warm))
    rows = []
    with tempfile.TemporaryDirectory(prefix="embedkit-bench-ray-") as tmp:
        work = Path(tmp)
        photos_dir = link_subset(photos, LFW, work / "photos")
        recorder = Recorder(pipeline)
        rows.append(timed_update(pipeline, photos_dir, work, "single process", recorder))

        # Ray kills workers when the node's memory is 95% used, by whatever: not here (a shared machine).
        os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
        started = time.perf_counter()
        start_local_runtime(CORES)
        ray_start = time.perf_counter() - started
        for workers in (1, 2):
            started = time.perf_counter()
            with RayEmbedder(SOURCE, pipeline.batch_size, workers=workers,
                             cpus_per_worker=max(1, CORES // workers)) as embedder:
                embedder.start(pipeline)
                list(embedder.embed_files(warm * workers))  # each actor traces its graph once
                startup = time.perf_counter() - started
                row = timed_update(pipeline, photos_dir, work, f"Ray, {workers} worker{'s' * (workers > 1)}",
                                   embedder)
            row["actor_startup_s"] = round(startup, 1)
            rows.append(row)
        if args.ray_data:
            for workers in (1, 2):
                rows.append(ray_data_run(pipeline, photos_dir, work, warm[0], workers))
        ray.shutdown()
        rows.append(timed_update(pipeline, photos_dir, work, WRITER_RUN,
                                 Replay(recorder.hashes, recorder.results)))
    single = rows[0]["photos_per_s"]
    for row in rows[1:]:
        if row["run"].startswith("Ray"):
            row["ray_overhead"] = round(1 - row.get("photos_per_s_after_startup", row["photos_per_s"]) / single, 3)
        if row["faces"] != rows[0]["faces"] or row["photos"] != rows[0]["photos"]:
            raise SystemExit(f"{row['run']}: {row['photos']} photos, {row['faces']} faces; one process: "
                             f"{rows[0]['photos']}, {rows[0]['faces']}")
    return {"photos": len(photos), "cores": CORES, "ray_runtime_start_s": round(ray_start, 1), "rows": rows,
            "command": "python benchmarks/bench_ray.py " + " ".join(sys.argv[1:])}


def ray_data_run(pipeline, photos_dir: Path, work: Path, first: Path, workers: int) -> dict:
    """Ray Data's row: its actor pool starts inside the run, so the start-up (a run on one photo) is timed apart."""
    embedder = RayDataEmbedder(SOURCE, pipeline.batch_size, workers=workers, cpus_per_worker=max(1, CORES // workers))
    started = time.perf_counter()
    list(embedder.embed_files([first]))  # pool start, model load, graph trace and one photo
    startup = time.perf_counter() - started
    row = timed_update(pipeline, photos_dir, work, f"Ray Data, {workers} worker{'s' * (workers > 1)}", embedder)
    row["actor_startup_s"] = round(startup, 1)
    row["photos_per_s_after_startup"] = round((row["photos"] - 1) / max(row["seconds"] - startup, 1e-3), 2)
    return row


def _row(results: dict, run: str) -> dict:
    return next(row for row in results["rows"] if row["run"] == run)


WRITER_RUN = "writer alone (replayed embeddings)"


def projection(results: dict) -> list[dict]:
    per_machine = max(_row(results, "Ray, 1 worker")["photos_per_s"], _row(results, "Ray, 2 workers")["photos_per_s"])
    writer = _row(results, WRITER_RUN)["photos_per_s"]
    out = []
    for n in MACHINES:
        rate = min(n * per_machine, writer)
        out.append({"machines": n, f"{CORES}-core machines x {per_machine} photos/s": round(n * per_machine, 1),
                    "projected photos/s (writer-capped)": round(rate, 1),
                    "10M photos": f"{ARCHIVE / rate / 3600:.1f} h"})
    return out


def markdown(results: dict) -> str:
    rows = results["rows"]
    columns = ["run", "photos", "faces", "seconds", "photos_per_s", "ray_overhead", "actor_startup_s",
               "load_before", "load_after"]
    if any("photos_per_s_after_startup" in row for row in rows):
        columns.insert(5, "photos_per_s_after_startup")
    table = markdown_table(rows, columns)
    writer = _row(results, WRITER_RUN)["photos_per_s"]
    return "\n".join([
        f"Command: `{results['command'].strip()}`",
        "",
        f"{results['photos']} LFW photos (evenly spread), YuNet + facenet, `FaceIndex.update` into a fresh index "
        f"per run on this {results['cores']}-core machine. Ray: a local runtime (started in "
        f"{results['ray_runtime_start_s']} s), actors started and warmed before the timed run "
        "(`actor_startup_s`). `ray_overhead` = 1 - Ray rate / single-process rate (target < 0.15)."
        + (" Ray Data (`map_batches`, actor pool of 1 or 2, one encoder per actor; hashing as tasks): the pool "
           "starts inside the timed run, so `photos_per_s_after_startup` = (photos - 1) / (seconds - the same "
           "pipeline's time on 1 photo, `actor_startup_s`), an estimate; its `ray_overhead` uses that rate. Every Ray run stored as many photos "
           "and faces as the single process (checked)." if any(r["run"].startswith("Ray Data") for r in rows)
           else ""),
        "",
        table,
        "",
        f"Projection (not a measurement): N machines like this one, each running Ray workers at the best Ray rate "
        f"above, feed one writer that commits at most {writer} photos/s (measured: the writer alone, replaying "
        "embeddings). Beyond that the writer is the bottleneck; hashing runs on the workers. Assumes the photos "
        "are on shared storage fast enough for all workers.",
        "",
        markdown_table(projection(results)),
        "",
        "Load average (1 min) before/after each run is in the table: on a shared machine the rates are lower "
        "bounds and the overhead is noisy; the lead reruns this on a quiet machine.",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--ray-data", action="store_true",
                        help="also run the Ray Data variant (map_batches over an actor pool; needs ray[data])")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    results = bench(args)
    text = markdown(results)
    print(text)
    if not args.no_write:
        write_json("ray", results)
        write_section("ray", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
