"""Every face of every LFW photo, embedded once and cached under ``benchmarks/.cache/``.

Embedding all 13,233 photos takes many CPU minutes; clustering benchmarks read
the cache instead. Photos of people with at least 5 photos come first, so a
partial cache already covers that subset. The cache is saved every few hundred
photos and an interrupted run resumes where it stopped.

    python benchmarks/lfw_cache.py              # fill the cache (yunet + pretrained facenet)
    python benchmarks/lfw_cache.py --status     # how much is cached
    python benchmarks/lfw_cache.py --backbone facenet+sface   # the fused backbone's cache
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
LFW_IMAGES = FACES / "lfw" / "lfw-deepfunneled"
CACHE_DIR = Path(__file__).resolve().parent / ".cache"


def lfw_photos(images: Path = LFW_IMAGES) -> list[tuple[str, str]]:
    """``(path, person)`` for every LFW photo: people with >= 5 photos first, then the rest, sorted."""
    people = sorted(p for p in images.iterdir() if p.is_dir())
    photos = {p.name: sorted(str(f) for f in p.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
              for p in people}
    big = [(f, name) for name, files in photos.items() if len(files) >= 5 for f in files]
    small = [(f, name) for name, files in photos.items() if len(files) < 5 for f in files]
    return big + small


def cache_path(detector: str = "yunet", backbone: str = "facenet") -> Path:
    return CACHE_DIR / f"lfw-faces-{backbone}-{detector}.npz"


def load_cache(path: Path) -> dict:
    """The cached arrays: ``paths``, ``people``, ``image_sizes`` (h, w) per photo, and per face
    ``photo`` (index into paths), ``boxes``, ``scores``, ``vectors``, ``model_id``."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, path)


def fill(detector: str = "yunet", backbone: str = "facenet", save_every: int = 300, limit: int | None = None) -> Path:
    from embedkit.faces import FaceExtractor
    from embedkit.faces.io import read_image
    from embedkit.pipeline import FacePipeline
    from embedkit.runtime import load_encoder

    path = cache_path(detector, backbone)
    data = load_cache(path)
    done = set(data["paths"].tolist()) if data else set()
    todo = [(f, p) for f, p in lfw_photos() if f not in done]
    if limit is not None:
        todo = todo[:limit]
    print(f"{len(done)} photos cached, {len(todo)} to embed", flush=True)
    if not todo:
        return path
    # TensorFlow, as the cache has always been made (a fused backbone runs its TensorFlow part there too).
    encoder = load_encoder(backbone=backbone, job="bulk", backend="tensorflow")
    pipeline = FacePipeline(encoder, FaceExtractor.for_encoder(encoder, detector))
    lists = {
        "paths": list(data.get("paths", [])), "people": list(data.get("people", [])),
        "image_sizes": list(data.get("image_sizes", np.zeros((0, 2), np.int32))),
        "photo": list(data.get("photo", [])), "boxes": list(data.get("boxes", np.zeros((0, 4), np.float32))),
        "scores": list(data.get("scores", [])),
        "vectors": list(data.get("vectors", np.zeros((0, encoder.embedding_dim), np.float32))),
    }
    person_of = dict(todo)

    def save():
        arrays = {
            "paths": np.array(lists["paths"], dtype=str), "people": np.array(lists["people"], dtype=str),
            "image_sizes": np.array(lists["image_sizes"], np.int32).reshape(-1, 2),
            "photo": np.array(lists["photo"], np.int64),
            "boxes": np.array(lists["boxes"], np.float32).reshape(-1, 4),
            "scores": np.array(lists["scores"], np.float32),
            "vectors": np.array(lists["vectors"], np.float32).reshape(-1, encoder.embedding_dim),
            "model_id": np.array(encoder.model_id), "detector": np.array(detector),
        }
        _save(path, arrays)

    started = time.time()
    for n, result in enumerate(pipeline.embed_files(f for f, _ in todo), start=1):
        if result.error:
            print(f"skipped {result.path}: {result.error}", flush=True)
            continue
        height, width = read_image(result.path).shape[:2] if result.faces else (0, 0)
        photo = len(lists["paths"])
        lists["paths"].append(result.path)
        lists["people"].append(person_of[result.path])
        lists["image_sizes"].append((height, width))
        for face, vector in zip(result.faces, result.embeddings):
            lists["photo"].append(photo)
            lists["boxes"].append(face.box)
            lists["scores"].append(face.score)
            lists["vectors"].append(vector)
        if n % save_every == 0:
            save()
            rate = n / (time.time() - started)
            print(f"{n}/{len(todo)} photos, {rate:.1f}/s", flush=True)
    save()
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--backbone", default="facenet")
    parser.add_argument("--limit", type=int, default=None, help="Embed at most this many more photos.")
    parser.add_argument("--status", action="store_true")
    args = parser.parse_args(argv)
    path = cache_path(args.detector, args.backbone)
    if args.status:
        data = load_cache(path)
        n = len(data.get("paths", []))
        print(f"{path}: {n} photos, {len(data.get('photo', []))} faces")
        return 0
    fill(args.detector, args.backbone, limit=args.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
