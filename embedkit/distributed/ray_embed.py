"""An :class:`~embedkit.pipeline.Embedder` that runs on Ray actors.

Each actor builds the index's pipeline once (one encoder per actor) from the
index's ``source`` settings, and turns a chunk of file paths into content
hashes or :class:`~embedkit.pipeline.FileFaces` (without the face crops: the
writer needs boxes and embeddings only). Chunks go out round-robin, three per
actor in flight (an actor works on two at once), and come back in the order given, so the writer
commits exactly what a local run would commit, in the same order.

An actor whose process dies (a killed or lost worker) is restarted by Ray and
its unfinished chunks are run again: embedding a file twice is harmless, and
the writer stores each content once. Workers read the files by the driver's
paths, so they need the same paths (shared storage) and the same model files.

Ray actors are used directly rather than Ray Data's ``map_batches`` with an
actor pool: the writer needs results in order, per-file errors and a bounded
stream, which actors give without converting faces to Arrow tables, and the
extra stays Ray core alone (Ray Data adds pyarrow and pandas).
``benchmarks/bench_ray.py --ray-data`` runs the same indexing both ways (Ray
Data: ``map_batches`` over an actor pool, one encoder per actor) to compare them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections import deque
from itertools import islice
from typing import Iterable, Iterator

from embedkit.errors import EmbedkitError
from embedkit.pipeline import FacePipeline, FileFaces

logger = logging.getLogger(__name__)

RAY_MISSING = "--ray needs Ray, which is not installed: pip install 'embedkit[ray]'"

# How often Ray restarts a dead actor and reruns its unfinished chunks before the run fails.
MAX_RESTARTS = 3


def import_ray():
    try:
        import ray
    except ImportError:
        raise EmbedkitError(RAY_MISSING) from None
    return ray


WORKER_ENV = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3", "OPENCV_LOG_LEVEL": "ERROR"}}


def start_local_runtime(cpus: int) -> None:
    """A Ray runtime on this machine with ``cpus`` CPUs for actors.

    Its workers run at this process's priority: Ray's default makes them 15
    steps nicer, which starves them on a machine busy with anything else.
    """
    ray = import_ray()
    ray.init(num_cpus=cpus, include_dashboard=False, runtime_env=WORKER_ENV, logging_level=logging.WARNING,
             log_to_driver=False, _system_config={"worker_niceness": 0})


class EmbedWorker:
    """What runs inside one Ray actor: the pipeline, built once."""

    def __init__(self, source: dict, batch_size: int, threads: int):
        import tensorflow as tf

        # One actor per CPU it was given: TensorFlow must not spread over the whole node.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        from embedkit.pipeline import pipeline_from_source

        self.pipeline = pipeline_from_source(source, batch_size, workers=threads, job="bulk")

    def describe(self) -> dict:
        return {"model_id": self.pipeline.encoder.model_id, "extractor": self.pipeline.extractor.describe(),
                "host": socket.gethostname(), "pid": os.getpid()}

    def hash(self, paths: list[str]) -> list[tuple[str | None, str | None]]:
        return list(self.pipeline.hash_files(paths))

    def embed(self, paths: list[str]) -> list[FileFaces]:
        results = list(self.pipeline.embed_files(paths))
        for result in results:  # the crops stay here: the writer stores boxes and embeddings
            result.faces = [dataclasses.replace(face, crop=None) for face in result.faces]
        return results


class RayEmbedder:
    """Hash and embed files on ``workers`` Ray actors.

    Args:
        source: the pipeline settings (as stored with an index, see
            :func:`embedkit.pipeline.pipeline_from_source`).
        address: a Ray cluster (``auto``, ``HOST:6379`` or ``ray://HOST:10001``);
            None starts a local Ray runtime of ``workers * cpus_per_worker`` CPUs
            (or joins the one this process already runs).
        workers: actors; default one per ``cpus_per_worker`` CPUs of the cluster
            (locally: of this machine, at most 4).
        cpus_per_worker: CPUs each actor asks Ray for (and threads it uses).
        chunk: files per request to an actor.

    Use as a context manager; :meth:`start` checks that every worker has the
    driver's model and face settings.
    """

    def __init__(self, source: dict, batch_size: int = 64, address: str | None = None, workers: int | None = None,
                 cpus_per_worker: int = 1, chunk: int = 32):
        self.source = dict(source)
        self.batch_size = batch_size
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.chunk = chunk
        self.actors: list = []
        self._started_ray = False
        self._ray = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self, expected: FacePipeline | None = None) -> "RayEmbedder":
        ray = self._ray = import_ray()
        self._connect(ray)
        workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus_per_worker))
        # Two chunks at once per actor: one is read and detected while the other is embedded.
        actor_class = ray.remote(num_cpus=self.cpus_per_worker, max_restarts=MAX_RESTARTS,
                                 max_task_retries=MAX_RESTARTS, max_concurrency=2)(EmbedWorker)
        self.actors = [actor_class.remote(self.source, self.batch_size, self.cpus_per_worker)
                       for _ in range(workers)]
        described = self._get([actor.describe.remote() for actor in self.actors])
        if expected is not None:
            want = {"model_id": expected.encoder.model_id, "extractor": expected.extractor.describe()}
            for info in described:
                got = {key: info[key] for key in want}
                if got != want:
                    raise EmbedkitError(
                        f"Ray worker on {info['host']} embeds with {got}, this process with {want}: workers need "
                        f"the same model files at the same path")
        logger.info("%d Ray workers on %s", len(self.actors), sorted({info["host"] for info in described}))
        return self

    def _connect(self, ray) -> None:
        if ray.is_initialized():
            return
        try:
            if self.address:
                ray.init(address=self.address, runtime_env=WORKER_ENV, logging_level=logging.WARNING,
                         log_to_driver=False)
            else:
                start_local_runtime((self.workers or min(4, os.cpu_count() or 1)) * self.cpus_per_worker)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray runtime"
            raise EmbedkitError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None
        self._started_ray = True

    def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def worker_pids(self) -> list[int]:
        """Process ids of the actors now (they change when Ray restarts one)."""
        return [info["pid"] for info in self._get([actor.describe.remote() for actor in self.actors])]

    # -- the Embedder interface --------------------------------------------------------------
    def hash_files(self, paths: Iterable) -> Iterator[tuple[str | None, str | None]]:
        return self._ordered("hash", paths)

    def embed_files(self, paths: Iterable) -> Iterator[FileFaces]:
        return self._ordered("embed", paths)

    def _ordered(self, method: str, paths: Iterable) -> Iterator:
        """Chunks of ``paths`` to the actors round-robin, a bounded number in flight, results in order."""
        if not self.actors:
            raise RuntimeError("RayEmbedder.start() first")
        paths = iter(str(p) for p in paths)
        in_flight: deque = deque()
        window = 3 * len(self.actors)
        number = 0
        while True:
            chunk = list(islice(paths, self.chunk))
            if chunk:
                actor = self.actors[number % len(self.actors)]
                in_flight.append(getattr(actor, method).remote(chunk))
                number += 1
            if in_flight and (len(in_flight) >= window or not chunk):
                yield from self._get(in_flight.popleft())
            elif not chunk:
                return

    def _get(self, refs):
        ray = self._ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayError as exc:
            raise EmbedkitError(f"Ray workers failed ({MAX_RESTARTS} restarts): "
                                f"{str(exc).strip().splitlines()[0]}") from None
