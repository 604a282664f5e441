"""face_recognition encodings and dlib's chinese_whispers_clustering, run by the peers' virtualenv.

``benchmarks/bench_people.py`` calls this file with ``<venv>/bin/python``
(the virtualenv ``benchmarks/bench_peers.py --setup`` makes); it imports only
numpy, face_recognition and dlib, never embedkit.

``encode``: face_recognition's documented recipe on each photo,
``face_locations(image)`` (HOG detector, upsampled once: the defaults) then
``face_encodings(image, locations)`` (5-point landmarks, one jitter: the
defaults), for EVERY face found; the caller picks a photo's main face. The
result is cached in one ``.npz`` whose name and ``key`` come from the
recipe, the dlib and face_recognition versions and the sha256 of both model
files, so a cache made another way is never read. Each photo is keyed by its
path and the sha256 of its content: a changed photo is encoded again. The cache
is saved every ``--save-every`` photos and a killed run resumes.

``cluster``: ``dlib.chinese_whispers_clustering(descriptors, threshold)`` on
the given 128-d vectors, once per threshold.

    <venv>/bin/python benchmarks/dlib_people_worker.py encode --paths-file F --cache-dir D
    <venv>/bin/python benchmarks/dlib_people_worker.py cluster --vectors V.npy --thresholds 0.5,0.55 --out L.npz
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import sys
import time
from pathlib import Path

RECIPE = "face_recognition.face_locations(image) [hog, upsample 1]; face_encodings(image, locations) [small, 1 jitter]"


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key() -> str:
    """What makes two caches interchangeable: the recipe, the library versions and the model files."""
    import dlib
    import face_recognition
    import face_recognition_models as models

    parts = [RECIPE, f"dlib {dlib.__version__}", f"face_recognition {face_recognition.__version__}",
             _file_sha256(models.face_recognition_model_location()),
             _file_sha256(models.pose_predictor_five_point_model_location())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def photo_stamp(path: str) -> str:
    """What a cached photo is checked against: its content (a copy of the same photos with new
    modification times, as a fresh checkout of the face data gives, keeps the cache)."""
    return "sha256:" + _file_sha256(path)


def cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"lfw-dlib-face-recognition-{key[:16]}.npz"


def load(path: Path, key: str) -> dict:
    import numpy as np

    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        if str(data["key"]) != key:
            return {}
        return {k: data[k] for k in data.files}


def save(path: Path, key: str, lists: dict) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, key=np.str_(key),
             paths=np.asarray(lists["paths"], dtype=str), stamps=np.asarray(lists["stamps"], dtype=str),
             image_sizes=np.asarray(lists["image_sizes"], np.int32).reshape(-1, 2),
             readable=np.asarray(lists["readable"], bool),
             photo=np.asarray(lists["photo"], np.int32),
             boxes=np.asarray(lists["boxes"], np.float32).reshape(-1, 4),
             vectors=np.asarray(lists["vectors"], np.float32).reshape(-1, 128))
    os.replace(tmp, path)


def encode(paths: list[str], cache_dir: Path, save_every: int, cached_only: bool = False) -> Path:
    """The cache file, after encoding the photos it lacks (``cached_only``: none; the caller checks
    which photos it holds, by path and stamp)."""
    key = cache_key()
    path = cache_file(cache_dir, key)
    data = load(path, key)
    if cached_only:
        return path
    if data:
        cached = dict(zip(data["paths"].tolist(), data["stamps"].tolist()))
        if all(cached.get(p) == photo_stamp(p) for p in paths):
            return path  # every photo cached, none changed since
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time; a second waits, then finds the photos done
        return _encode_locked(paths, path, key, save_every)


def _encode_locked(paths: list[str], path: Path, key: str, save_every: int) -> Path:
    import face_recognition
    import numpy as np

    data = load(path, key)
    lists = {k: [] for k in ("paths", "stamps", "image_sizes", "readable", "photo", "boxes", "vectors")}
    if data:  # keep the photos whose file is unchanged
        first = np.searchsorted(data["photo"], np.arange(len(data["paths"])))
        last = np.searchsorted(data["photo"], np.arange(len(data["paths"])), side="right")
        for i, (p, stamp) in enumerate(zip(data["paths"].tolist(), data["stamps"].tolist())):
            if os.path.exists(p) and photo_stamp(p) == stamp:
                _append(lists, p, stamp, data["image_sizes"][i], data["readable"][i],
                        data["boxes"][first[i]:last[i]], data["vectors"][first[i]:last[i]])
    done = set(lists["paths"])
    todo = [p for p in paths if p not in done]
    print(f"dlib encodings: {len(done)} photos cached, {len(todo)} to encode ({path.name})", file=sys.stderr, flush=True)
    started = time.perf_counter()
    for n, p in enumerate(todo, 1):
        stamp = photo_stamp(p)
        try:
            image = face_recognition.load_image_file(p)
        except Exception as exc:  # noqa: BLE001 - one unreadable photo must not stop the run
            print(f"{p!r}: unreadable ({type(exc).__name__})", file=sys.stderr, flush=True)
            _append(lists, p, stamp, (0, 0), False, np.zeros((0, 4)), np.zeros((0, 128)))
            continue
        locations = face_recognition.face_locations(image)
        vectors = face_recognition.face_encodings(image, locations) if locations else []
        boxes = [(left, top, right - left, bottom - top) for top, right, bottom, left in locations]
        _append(lists, p, stamp, image.shape[:2], True, np.asarray(boxes, np.float32).reshape(-1, 4),
                np.asarray(vectors, np.float32).reshape(-1, 128))
        if n % save_every == 0 or n == len(todo):
            save(path, key, lists)
            rate = n / (time.perf_counter() - started)
            print(f"dlib encodings: {len(lists['paths'])} photos cached ({rate:.1f} photos/s)",
                  file=sys.stderr, flush=True)
    if not todo and not path.is_file():
        save(path, key, lists)
    return path


def _append(lists: dict, path, stamp, size, readable, boxes, vectors) -> None:
    photo_no = len(lists["paths"])
    lists["paths"].append(str(path))
    lists["stamps"].append(str(stamp))
    lists["image_sizes"].append(tuple(int(v) for v in size))
    lists["readable"].append(bool(readable))
    for box, vector in zip(boxes, vectors):
        lists["photo"].append(photo_no)
        lists["boxes"].append(box)
        lists["vectors"].append(vector)


def cluster(vectors_file: Path, thresholds: list[float], out: Path) -> None:
    import dlib
    import numpy as np

    vectors = np.load(vectors_file)
    descriptors = [dlib.vector(v.astype(float).tolist()) for v in vectors]
    labels, seconds = {}, {}
    for t in thresholds:
        started = time.perf_counter()
        labels[f"t{t}"] = np.asarray(dlib.chinese_whispers_clustering(descriptors, t), np.int64)
        seconds[f"s{t}"] = time.perf_counter() - started
    np.savez(out, **labels, **{k: np.float64(v) for k, v in seconds.items()})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode")
    enc.add_argument("--paths-file", type=Path, required=True)
    enc.add_argument("--cache-dir", type=Path, required=True)
    enc.add_argument("--save-every", type=int, default=200)
    enc.add_argument("--cached-only", action="store_true", help="Encode nothing; print the cache file.")
    cl = sub.add_parser("cluster")
    cl.add_argument("--vectors", type=Path, required=True)
    cl.add_argument("--thresholds", required=True)
    cl.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "encode":
        print(encode(args.paths_file.read_text().splitlines(), args.cache_dir, args.save_every, args.cached_only))
    else:
        cluster(args.vectors, [float(t) for t in args.thresholds.split(",")], args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
