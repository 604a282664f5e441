"""Image files to face embeddings, fast: reading and detection run in worker
threads while the encoder embeds batches gathered across files."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol

import numpy as np

from embedkit.encoder import Encoder
from embedkit.faces import Face, FaceExtractor
from embedkit.faces.extract import default_workers, framings_of, stack_crops
from embedkit.hashing import hash_files


@dataclass
class FileFaces:
    """What one file gave: its faces and their embeddings, or the reason it gave none.

    ``error`` is set when the file could not be read; a readable file with no
    face has ``faces == []`` and no error.
    """

    path: str
    faces: list[Face] = field(default_factory=list)
    embeddings: np.ndarray | None = None
    error: str | None = None


class Embedder(Protocol):
    """Where an index update gets content hashes and embeddings from (a :class:`FacePipeline`, or
    one that fans the work out, such as :class:`embedkit.distributed.RayEmbedder`).

    Both methods yield one result per path, in the order given.
    """

    def hash_files(self, paths: Iterable) -> Iterator[tuple[str | None, str | None]]: ...

    def embed_files(self, paths: Iterable) -> Iterator[FileFaces]: ...


class FacePipeline:
    """Reads, detects, aligns and embeds the faces in image files.

    Args:
        encoder: the encoder to embed with.
        extractor: how faces are found; defaults to the YuNet detector at the
            encoder's input size.
        batch_size: faces per encoder call.
        workers: threads for reading and detection.
        flip: also embed mirror images (see :meth:`Encoder.encode`).
    """

    def __init__(self, encoder: Encoder, extractor: FaceExtractor | None = None, batch_size: int = 64,
                 workers: int | None = None, flip: bool = False):
        self.encoder = encoder
        self.extractor = extractor or FaceExtractor.for_encoder(encoder)
        if self.extractor.framings != framings_of(encoder):
            raise ValueError(f"extractor makes crops {self.extractor.framings}, encoder wants {framings_of(encoder)}")
        self.batch_size = batch_size
        self.workers = workers or default_workers()
        self.flip = flip

    def prepare(self, expected_files: int) -> None:
        """Say how many files are coming, so the encoder can pick the back-end that suits the job's size."""
        for_job = getattr(self.encoder, "for_job", None)
        if for_job is not None:
            self.encoder = for_job(expected_files)

    def _extract(self, path) -> FileFaces:
        faces, reason = self.extractor.try_file(path)
        return FileFaces(str(path), faces, error=reason)

    def embed_files(self, paths: Iterable) -> Iterator[FileFaces]:
        """Yield a :class:`FileFaces` for every path, in order, with embeddings filled in."""
        pending: list[FileFaces] = []
        n_faces = 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="embedkit-read") as pool:
            for result in _ordered_map(pool, self._extract, paths, window=self.workers * 8):
                pending.append(result)
                n_faces += len(result.faces)
                if n_faces >= self.batch_size:
                    yield from self._flush(pending)
                    pending, n_faces = [], 0
            yield from self._flush(pending)

    def _flush(self, results: list[FileFaces]) -> Iterator[FileFaces]:
        faces = [face for result in results for face in result.faces]
        embeddings = self.encoder.encode(stack_crops(faces), self.batch_size, self.flip) if faces else None
        start = 0
        for result in results:
            count = len(result.faces)
            if embeddings is not None:
                result.embeddings = embeddings[start:start + count]
            else:
                result.embeddings = np.zeros((0, self.encoder.embedding_dim), np.float32)
            start += count
            yield result

    @staticmethod
    def hash_files(paths: Iterable) -> Iterator[tuple[str | None, str | None]]:
        """Content hashes, in order (see :func:`embedkit.hashing.hash_files`)."""
        return hash_files(paths)

    def embed_file(self, path) -> FileFaces:
        """All faces of one file (errors reported in ``.error``)."""
        return next(iter(self.embed_files([path])))


RANDOM_WEIGHTS_SEED = 0


def pipeline_from_source(source: dict, batch_size: int = 64, workers: int | None = None, job: str = "single",
                         backend: str = "auto") -> FacePipeline:
    """The pipeline an index's ``source`` settings describe (as stored with it, and as given to Ray workers).

    ``source`` has the keys ``model_dir``, ``backbone``, ``weights``, ``detector``,
    ``no_detect``, ``center_crop`` and ``flip``; ``job`` and ``backend`` choose
    the inference back-end (see :mod:`embedkit.runtime`).
    """
    from embedkit.runtime import load_encoder

    if source["weights"] == "random" and not source["model_dir"]:
        # Seeded, so the same random model (and model id) comes back on every run.
        import keras

        keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)
    encoder = load_encoder(source["model_dir"], source["backbone"], source["weights"] or "pretrained", job=job,
                           backend=backend)
    detector = None if source["no_detect"] else source["detector"]
    extractor = FaceExtractor.for_encoder(encoder, detector, source["center_crop"])
    return FacePipeline(encoder, extractor, batch_size=batch_size, workers=workers, flip=bool(source["flip"]))


def _ordered_map(pool: ThreadPoolExecutor, fn, items: Iterable, window: int):
    """``pool.map`` that keeps at most ``window`` items in flight (bounded memory)."""
    from collections import deque

    futures = deque()
    for item in items:
        futures.append(pool.submit(fn, item))
        if len(futures) >= window:
            yield futures.popleft().result()
    while futures:
        yield futures.popleft().result()
