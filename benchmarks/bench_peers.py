"""embedkit next to the face tools people use today, in one run, on the same photos and pairs.

Peers (each in a separate virtualenv, so their TensorFlow/Keras/OpenCV
versions never touch embedkit's):

* ``face_recognition`` (dlib's ResNet, 128-d; HOG detector; score = minus the
  Euclidean distance, its own metric), from ``dlib-bin`` (a prebuilt dlib) and
  ``face-recognition-models``;
* ``deepface`` with its ``Facenet`` model, given embedkit's own facenet
  weights file (the sha256 pinned in ``embedkit/backbones/facenet.py``) at
  ``$DEEPFACE_HOME/.deepface/weights/facenet_weights.h5`` (it cannot
  download here), its ``opencv`` (Haar cascade) detector, which works offline
  with an OpenCV 4 wheel (OpenCV 5 wheels no longer bundle the cascades), and
  ``normalization="Facenet"`` (the per-image standardisation this model was
  trained with; deepface's default "base" feeds it raw [0, 1] pixels), cosine
  similarity.

Measured: LFW 10-fold accuracy on the same pairs with the same metrics code
(:func:`embedkit.evaluation.metrics.verification_report`; a photo where a
tool finds no face scores its pairs as 'different', deepface's
``enforce_detection=False`` instead embeds the whole photo, as it does by
default in ``find``), images/s of each tool's own embed loop, and 1:N search:
``DeepFace.find`` per query against a folder of LFW photos vs ``embedkit
query`` (``search.query_image``) on an index of the same photos.

Setup, once (creates the virtualenv, installs the peers, places the weights):

    python benchmarks/bench_peers.py --setup            # venv at /work/peers-venv
    python benchmarks/bench_peers.py --setup --venv ~/peers-venv

Run (all 6,000 pairs take long on 2 cores; --folds K uses the first K folds):

    python benchmarks/bench_peers.py --folds 2 --find-photos 1000 --find-queries 20

The script runs the peers as ``<venv>/bin/python bench_peers.py --worker ...``
subprocesses, which import nothing from embedkit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
FACES = HERE.parents[2] / "shared" / "faces"
DEFAULT_PAIRS = FACES / "lfw" / "pairs.txt"
DEFAULT_IMAGES = FACES / "lfw" / "lfw-deepfunneled"
DEFAULT_VENV = Path("/work/peers-venv")

# What --setup installs. face_recognition declares a dependency on the source
# `dlib` package (a long C++ build), so it goes in with --no-deps after dlib-bin.
PEER_PACKAGES = [
    ["dlib-bin", "face-recognition-models", "Click>=6.0", "Pillow", "numpy"],
    ["--no-deps", "face_recognition"],
    ["deepface", "werkzeug", "tensorflow==2.21.0", "tf-keras", "opencv-contrib-python-headless<5"],
]
DEEPFACE_WEIGHTS_NAME = "facenet_weights.h5"
# Below any real score of its tool: a pair with a faceless photo is a 'different' verdict.
MISSING = {"dlib": -10.0, "deepface": -2.0}


# ---------------------------------------------------------------------------------------------
# Workers: run inside the peers' virtualenv; numpy and the peer library only.
# ---------------------------------------------------------------------------------------------

def _central(boxes_xywh, width: int, height: int) -> int:
    best, best_d = 0, float("inf")
    for i, (x, y, w, h) in enumerate(boxes_xywh):
        d = (x + w / 2 - width / 2) ** 2 + (y + h / 2 - height / 2) ** 2
        if d < best_d:
            best, best_d = i, d
    return best


def worker_embed_dlib(paths: list[str]):
    import face_recognition
    import numpy as np

    vectors = np.zeros((len(paths), 128), np.float32)
    found = np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        try:
            image = face_recognition.load_image_file(path)
        except Exception:
            continue
        locations = face_recognition.face_locations(image)  # HOG, upsample once: the defaults
        if not locations:
            continue
        boxes = [(left, top, right - left, bottom - top) for top, right, bottom, left in locations]
        k = _central(boxes, image.shape[1], image.shape[0])
        vectors[i] = face_recognition.face_encodings(image, [locations[k]])[0]
        found[i] = True
    return vectors, found


def _deepface_face(faces: list[dict], path: str):
    import cv2

    image = cv2.imread(path)
    height, width = image.shape[:2]
    boxes = [(f["facial_area"]["x"], f["facial_area"]["y"], f["facial_area"]["w"], f["facial_area"]["h"])
             for f in faces]
    return faces[_central(boxes, width, height)]


def worker_embed_deepface(paths: list[str]):
    import numpy as np
    from deepface import DeepFace

    vectors = np.zeros((len(paths), 128), np.float32)
    found = np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        try:
            faces = DeepFace.represent(img_path=path, model_name="Facenet", detector_backend="opencv",
                                       enforce_detection=False, align=True, normalization="Facenet")
        except Exception:
            continue
        face = _deepface_face(faces, path)
        vectors[i] = face["embedding"]
        found[i] = face.get("face_confidence", 0) > 0  # 0: no face found, the whole photo was embedded
    return vectors, found


def worker_check_deepface(out: Path) -> None:
    """The weights file deepface loads, and its Facenet's output on a fixed input."""
    import numpy as np
    from deepface import DeepFace
    from deepface.commons import folder_utils

    weights = Path(folder_utils.get_deepface_home()) / ".deepface" / "weights" / DEEPFACE_WEIGHTS_NAME
    client = DeepFace.build_model(task="facial_recognition", model_name="Facenet")
    x = np.random.default_rng(0).standard_normal((2, 160, 160, 3)).astype(np.float32)
    y = np.asarray(client.model(x, training=False))
    np.savez(out, output=y, weights=str(weights), sha256=_sha256(weights))


def worker_find(db: str, queries: list[str], out: Path) -> None:
    """Seconds of DeepFace.find per query (the first call, which builds the datastore, apart)."""
    from deepface import DeepFace

    kwargs = {"db_path": db, "model_name": "Facenet", "detector_backend": "opencv", "enforce_detection": False,
              "normalization": "Facenet", "silent": True}
    started = time.perf_counter()
    DeepFace.find(img_path=queries[0], **kwargs)
    build = time.perf_counter() - started
    times, hits = [], 0
    for query in queries[1:]:
        started = time.perf_counter()
        found = DeepFace.find(img_path=query, **kwargs)
        times.append(time.perf_counter() - started)
        hits += bool(len(found) and len(found[0]))
    out.write_text(json.dumps({"build_seconds": build, "query_seconds": times, "queries_with_matches": hits}))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_worker(args) -> int:
    import numpy as np

    if args.worker == "check-deepface":
        worker_check_deepface(Path(args.out))
        return 0
    paths = Path(args.paths_file).read_text().splitlines()
    if args.worker == "find":
        worker_find(args.db, paths, Path(args.out))
        return 0
    embed = {"dlib": worker_embed_dlib, "deepface": worker_embed_deepface}[args.worker]
    embed(paths[:2])  # load models before timing
    started = time.perf_counter()
    vectors, found = embed(paths)
    np.savez(args.out, vectors=vectors, found=found, seconds=time.perf_counter() - started)
    return 0


# ---------------------------------------------------------------------------------------------
# Setup and the main run (embedkit's Python).
# ---------------------------------------------------------------------------------------------

def deepface_weights_path() -> Path:
    home = Path(os.environ.get("DEEPFACE_HOME", os.path.expanduser("~")))
    return home / ".deepface" / "weights" / DEEPFACE_WEIGHTS_NAME


def place_deepface_weights() -> Path:
    """Copy embedkit's verified facenet weights to where deepface looks for its Facenet's."""
    sys.path.insert(0, str(HERE.parents[1]))
    from embedkit.backbones.facenet import FACENET_WEIGHTS
    from embedkit.backbones.weights import ensure_weights

    source = ensure_weights(FACENET_WEIGHTS)
    target = deepface_weights_path()
    if not target.is_file() or _sha256(target) != FACENET_WEIGHTS.sha256:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    print(f"facenet weights at {target} (sha256 {FACENET_WEIGHTS.sha256[:12]}...)")
    return target


def setup(venv: Path) -> None:
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    for packages in PEER_PACKAGES:
        subprocess.run(pip + packages, check=True)
    place_deepface_weights()


def call_worker(venv: Path, *args: str) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    subprocess.run([str(venv / "bin" / "python"), str(HERE), *args], check=True, env=env)


def peer_embeddings(venv: Path, peer: str, paths: list[str], work: Path):
    import numpy as np

    listing = work / f"{peer}-paths.txt"
    listing.write_text("\n".join(paths))
    out = work / f"{peer}.npz"
    call_worker(venv, "--worker", peer, "--paths-file", str(listing), "--out", str(out))
    data = np.load(out)
    return data["vectors"], data["found"], float(data["seconds"])


def peer_report(peer: str, paths: list[str], vectors, found, seconds: float, pairs, images: Path) -> dict:
    import numpy as np

    from embedkit.evaluation.metrics import verification_report

    row = {p: i for i, p in enumerate(paths)}
    a = np.array([row[str(images / p.path_a)] for p in pairs])
    b = np.array([row[str(images / p.path_b)] for p in pairs])
    if peer == "dlib":
        scores = -np.linalg.norm(vectors[a] - vectors[b], axis=1)
    else:
        v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        scores = np.einsum("ij,ij->i", v[a], v[b])
    usable = found if peer == "dlib" else np.ones_like(found)  # deepface embeds the whole photo instead
    scores = np.where(usable[a] & usable[b], scores, MISSING[peer]).astype(np.float64)
    folds = np.array([p.fold for p in pairs])
    report = verification_report(scores, np.array([p.same for p in pairs]),
                                 folds=folds if np.unique(folds).size >= 2 else None)  # one fold: stratified
    report.update(n_images=len(paths), n_no_face=int((~found).sum()), images_per_second=len(paths) / seconds,
                  embed_seconds=round(seconds, 1))
    return report


def check_deepface_weights(venv: Path, encoder, work: Path) -> dict:
    """deepface's Facenet loads the same file and computes the same function as embedkit's."""
    import numpy as np

    from embedkit.backbones.facenet import FACENET_WEIGHTS

    out = work / "check.npz"
    call_worker(venv, "--worker", "check-deepface", "--out", str(out))
    data = np.load(out)
    x = np.random.default_rng(0).standard_normal((2, 160, 160, 3)).astype(np.float32)
    ours = np.asarray(encoder.network(x, training=False))
    theirs = data["output"] / np.linalg.norm(data["output"], axis=1, keepdims=True)
    return {"weights_file": str(data["weights"]), "sha256_matches_pinned": str(data["sha256"]) == FACENET_WEIGHTS.sha256,
            "min_cosine_to_embedkit": float(np.min(np.sum(ours * theirs, axis=1)))}


def find_benchmark(venv: Path, pipeline, photos: list[Path], n_queries: int, work: Path) -> dict:
    """DeepFace.find vs embedkit query, per query, on one folder of the same photos."""
    import numpy as np

    from embedkit.index import FaceIndex
    from embedkit.search import query_image

    db = work / "find-db"
    for photo in photos:
        link = db / photo.parent.name / photo.name
        link.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo, link)
    step = max(1, len(photos) // (n_queries + 1))
    queries = [str(db / p.parent.name / p.name) for p in photos[::step][: n_queries + 1]]

    listing = work / "queries.txt"
    listing.write_text("\n".join(queries))
    out = work / "find.json"
    call_worker(venv, "--worker", "find", "--db", str(db), "--paths-file", str(listing), "--out", str(out))
    deepface = json.loads(out.read_text())

    with FaceIndex.create(work / "index") as index:
        started = time.perf_counter()
        index.update(db, pipeline)
        build = time.perf_counter() - started
        query_image(index, pipeline, queries[0], 5)  # warm
        query_times, search_times = [], []
        for query in queries[1:]:
            started = time.perf_counter()
            query_image(index, pipeline, query, 5)
            query_times.append(time.perf_counter() - started)
        embeddings = [r.embeddings[0] for r in pipeline.embed_files(queries[1:]) if len(r.faces)]
        for embedding in embeddings:
            started = time.perf_counter()
            index.search(embedding, 5)
            search_times.append(time.perf_counter() - started)
    ms = lambda xs, q: float(np.percentile(np.asarray(xs) * 1000, q))  # noqa: E731
    result = {
        "photos": len(photos), "queries": len(queries) - 1,
        "deepface_find": {"build_seconds": round(deepface["build_seconds"], 1),
                          "p50_ms": ms(deepface["query_seconds"], 50), "p99_ms": ms(deepface["query_seconds"], 99)},
        "embedkit_query": {"index_seconds": round(build, 1), "p50_ms": ms(query_times, 50),
                           "p99_ms": ms(query_times, 99)},
        "embedkit_search_only": {"p50_ms": ms(search_times, 50), "p99_ms": ms(search_times, 99)},
    }
    result["speedup_query_p50"] = result["deepface_find"]["p50_ms"] / result["embedkit_query"]["p50_ms"]
    result["speedup_search_only_p50"] = result["deepface_find"]["p50_ms"] / result["embedkit_search_only"]["p50_ms"]
    return result


def row(tool: str, faces: str, r: dict) -> dict:
    return {
        "tool": tool, "faces": faces,
        "10-fold accuracy": f"{100 * r['accuracy']:.2f}% ± {100 * r['accuracy_std']:.2f}",
        "AUC": f"{r['auc']:.4f}", "EER": f"{100 * r['eer']:.2f}%",
        "TAR@FAR=1e-3": f"{100 * r['tar_at_far_1e-3']:.2f}%",
        "photos without a face": f"{r.get('n_no_face', r.get('n_missing'))} of {r['n_images']}",
        "images/s": f"{r['images_per_second']:.1f}",
    }


def markdown(results: dict, command: str) -> str:
    acc = results["accuracy"]
    rows = [row("embedkit (facenet)", "YuNet detect + align", acc["embedkit"])]
    if "dlib" in acc:
        rows.append(row("face_recognition (dlib)", "dlib HOG", acc["dlib"]))
    if "deepface" in acc:
        rows.append(row("deepface (Facenet, same weights)", "OpenCV Haar (whole photo if none)", acc["deepface"]))
    lines = [
        "### Peers: same LFW pairs, same metrics code, same run",
        "",
        f"{results['n_pairs']} pairs of `lfw/pairs.txt` (folds 1-{results['n_folds']}), {results['n_images']} photos. "
        + ("Each fold scored at the best threshold of the other folds. " if results["n_folds"] > 1 else
           "One LFW fold, so accuracy is cross-validated over 10 splits of its pairs stratified by same/different "
           "(threshold from the other 9 splits). ")
        + "A photo where a tool found no face scores its pairs as 'different' (deepface embeds the whole photo "
        "instead). images/s: each tool embedding the photos in its own loop (embedkit: its FacePipeline); the "
        "machine was shared with other jobs, which slows all three alike"
        + (f" (1-minute load average {', then '.join(f'{x:.1f}' for x in results['load_average'])} on "
           f"{os.cpu_count()} cores)." if results.get("load_average") else "."),
        "",
        __import__("benchmarks.results", fromlist=["markdown_table"]).markdown_table(rows),
    ]
    check = results.get("deepface_weights")
    if check:
        lines += ["", f"deepface loaded `{check['weights_file']}`: sha256 matches embedkit's pinned facenet weights: "
                      f"{check['sha256_matches_pinned']}; cosine between its and embedkit's outputs on a fixed input: "
                      f"{check['min_cosine_to_embedkit']:.6f}."]
    find = results.get("find")
    if find:
        d, e, s = find["deepface_find"], find["embedkit_query"], find["embedkit_search_only"]
        load = results.get("find_load_average")
        lines += [
            "",
            f"1:N search, per query, against a folder of {find['photos']} LFW photos ({find['queries']} queries"
            + (f"; a separate run, `{results['find_command']}`, 1-minute load average "
               f"{', then '.join(f'{x:.1f}' for x in load)}" if load else "") + "):",
            "",
            "| | p50 | p99 | set-up |",
            "|---|---|---|---|",
            f"| `DeepFace.find` (detect + embed query, search) | {d['p50_ms']:.0f} ms | {d['p99_ms']:.0f} ms | "
            f"{d['build_seconds']:.0f} s first call (embeds the folder) |",
            f"| `embedkit query` (detect + embed query, search) | {e['p50_ms']:.0f} ms | {e['p99_ms']:.0f} ms | "
            f"{e['index_seconds']:.0f} s `FaceIndex.update` |",
            f"| embedkit search only (`FaceIndex.search`) | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | |",
            "",
            f"`DeepFace.find` p50 / `embedkit query` p50 = {find['speedup_query_p50']:.1f}x; "
            f"/ embedkit search only = {find['speedup_search_only_p50']:.0f}x.",
        ]
    lines += ["", f"Command: `{command}`"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="Create the peers' virtualenv and place the weights.")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--folds", type=int, default=None, help="Only the first K folds.")
    parser.add_argument("--peers", default="dlib,deepface")
    parser.add_argument("--find-photos", type=int, default=1000, help="Folder size for the find test (0: skip).")
    parser.add_argument("--find-queries", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--find-only", action="store_true",
                        help="Rerun only the find comparison, keeping the accuracy figures of peers.json.")
    parser.add_argument("--rewrite", action="store_true",
                        help="Only re-render the RESULTS.md section from benchmarks/results/peers.json.")
    parser.add_argument("--worker", choices=["dlib", "deepface", "check-deepface", "find"], help=argparse.SUPPRESS)
    parser.add_argument("--paths-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)
    if args.setup:
        setup(args.venv)
        return 0
    if args.rewrite:
        sys.path.insert(0, str(HERE.parents[1]))
        from benchmarks.results import RESULTS_JSON_DIR, write_section

        saved = json.loads((RESULTS_JSON_DIR / "peers.json").read_text())["results"]
        write_section("peers", markdown(saved, saved["command"]))
        return 0

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(HERE.parents[1]))
    from benchmarks.results import write_json, write_section
    from embedkit.encoder import Encoder
    from embedkit.evaluation.evaluate import embed_images, evaluate_pairs
    from embedkit.evaluation.pairs import read_lfw_pairs
    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline

    if not (args.venv / "bin" / "python").exists():
        parser.error(f"no peers' virtualenv at {args.venv}; run with --setup first")
    place_deepface_weights()
    command = "python benchmarks/bench_peers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    pairs = read_lfw_pairs(args.pairs)
    if args.folds:
        pairs = [p for p in pairs if p.fold < args.folds]
    paths = list(dict.fromkeys(str(args.images / q) for p in pairs for q in (p.path_a, p.path_b)))
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if args.find_only:
        from benchmarks.results import RESULTS_JSON_DIR

        results = json.loads((RESULTS_JSON_DIR / "peers.json").read_text())["results"]
        results["find_command"] = command
        results["find_load_average"] = [round(os.getloadavg()[0], 2)]
        peers = ["deepface"]
        encoder = Encoder.from_backbone("facenet")
        pipeline = FacePipeline(encoder, FaceExtractor(encoder.input_size, "yunet"))
        with tempfile.TemporaryDirectory(prefix="embedkit-peers-") as tmp:
            photos = sorted(args.images.rglob("*.jpg"))
            step = max(1, len(photos) // args.find_photos)
            results["find"] = find_benchmark(args.venv, pipeline, photos[::step][: args.find_photos],
                                             args.find_queries, Path(tmp))
        results["find_load_average"].append(round(os.getloadavg()[0], 2))
        print("find:", results["find"], flush=True)
        if not args.no_write:
            write_json("peers", results)
            write_section("peers", markdown(results, results["command"]))
        return 0
    results = {"n_pairs": len(pairs), "n_folds": len({p.fold for p in pairs}), "n_images": len(paths),
               "command": command, "accuracy": {}, "load_average": [round(os.getloadavg()[0], 2)]}

    def save():
        if not args.no_write:
            write_json("peers", results)
            write_section("peers", markdown(results, command))

    encoder = Encoder.from_backbone("facenet")
    pipeline = FacePipeline(encoder, FaceExtractor(encoder.input_size, "yunet"))
    with tempfile.TemporaryDirectory(prefix="embedkit-peers-") as tmp:
        work = Path(tmp)
        if "deepface" in peers:
            results["deepface_weights"] = check_deepface_weights(args.venv, encoder, work)
            print("deepface weights:", results["deepface_weights"], flush=True)
        print(f"embedkit on {len(pairs)} pairs, {len(paths)} photos ...", flush=True)
        embed_images(pipeline, paths[:8])  # warm up: trace the graph, load the detectors
        results["accuracy"]["embedkit"] = evaluate_pairs(pipeline, pairs, args.images)
        print("embedkit:", row("embedkit", "yunet", results["accuracy"]["embedkit"]), flush=True)
        for peer in peers:
            print(f"{peer} ...", flush=True)
            vectors, found, seconds = peer_embeddings(args.venv, peer, paths, work)
            results["accuracy"][peer] = peer_report(peer, paths, vectors, found, seconds, pairs, args.images)
            print(f"{peer}:", row(peer, "", results["accuracy"][peer]), flush=True)
            save()
        if args.find_photos and "deepface" in peers:
            photos = sorted(args.images.rglob("*.jpg"))
            step = max(1, len(photos) // args.find_photos)
            results["find"] = find_benchmark(args.venv, pipeline, photos[::step][: args.find_photos],
                                             args.find_queries, work)
            print("find:", results["find"], flush=True)
        results["load_average"].append(round(os.getloadavg()[0], 2))
        save()
    if args.no_write:
        print(markdown(results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
