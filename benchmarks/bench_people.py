"""Clustering LFW into people: embedkit against scikit-learn's average-link and HDBSCAN.

All methods cluster the same embeddings in the same run: pretrained facenet,
YuNet detection and alignment, the main face of each photo (the most central
of the faces at least half as large as the largest; the rule ``index
--labels`` uses). Embeddings come from ``benchmarks/lfw_cache.py``'s cache
(filled first if needed: all 13,233 photos take many CPU minutes, once).

Sets (identity-disjoint where it matters):

* tune: LFW people with fewer than 5 photos (2-4 photos, plus everyone with
  one photo as distractors). embedkit's two settings (merge threshold,
  relative condition) are chosen here: the best BCubed F with BCubed
  precision >= 0.99.
* (a) LFW people with at least 5 photos (423 people, 5,985 photos): no one in
  it was used for tuning. Baselines get their best setting *on this set*
  (an advantage embedkit does not get).
* (b) all 13,233 photos (5,749 people, 4,069 of them with one photo, which
  must stay alone). The tune people are part of it.

Metrics: BCubed precision / recall / F and pairwise F
(:mod:`embedkit.evaluation.clustering`); a photo left unclustered (HDBSCAN
noise) counts as a cluster of its own.

Speed (``--speed``): every face of every photo (about 15.6k) stored in a
fresh index, ``embedkit.people.cluster`` timed on it (all of it: SQLite reads,
clustering, writes), then 100 more faces added and clustered again.

    python benchmarks/bench_people.py                  # everything (fills the cache first)
    python benchmarks/bench_people.py --no-b --no-speed  # quicker: tune + (a)
    python benchmarks/bench_people.py --speed-only

Writes section ``people`` of ``benchmarks/RESULTS.md`` and
``benchmarks/results/people.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lfw_cache import LFW_IMAGES, cache_path, fill, lfw_photos, load_cache  # noqa: E402
from benchmarks.results import markdown_table, write_json, write_section  # noqa: E402

TUNE_THRESHOLDS = (0.45, 0.5, 0.55, 0.6)
TUNE_RELATIVE = (0.0, 0.75, 0.8, 0.85)
TUNE_RELATIVE_MIN = (2, 4)
AVERAGE_LINK_DISTANCES = (0.4, 0.45, 0.5, 0.55, 0.6)
HDBSCAN_SIZES = (2, 3, 5)
TARGET_PRECISION = 0.99


# -- data ------------------------------------------------------------------------------------------

def main_faces(data: dict) -> dict:
    """One face per photo (its main face): ``vectors``, ``people``, ``paths``; and photos without a face."""
    from embedkit.faces.extract import main_face

    photo = data["photo"]
    n = len(data["paths"])
    first = np.searchsorted(photo, np.arange(n))
    last = np.searchsorted(photo, np.arange(n), side="right")
    rows, keep = [], []
    for p in range(n):
        if first[p] == last[p]:
            continue
        height, width = (int(v) for v in data["image_sizes"][p])
        faces = [SimpleNamespace(box=tuple(data["boxes"][i]), image_size=(width, height))
                 for i in range(first[p], last[p])]
        rows.append(first[p] + main_face(faces))
        keep.append(p)
    keep = np.asarray(keep)
    return {"vectors": data["vectors"][rows], "people": data["people"][keep], "paths": data["paths"][keep],
            "no_face": int(n - len(keep))}


def photo_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, person in lfw_photos():
        counts[person] = counts.get(person, 0) + 1
    return counts


# -- methods ---------------------------------------------------------------------------------------

def embedkit_labels(vectors, threshold, relative, relative_min):
    from embedkit.people.cluster import cluster_vectors

    return cluster_vectors(vectors, threshold, relative=relative, relative_min=relative_min)


def average_link_labels(vectors, distance):
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=distance)
    return model.fit_predict(vectors)


def hdbscan_labels(vectors, min_cluster_size):
    from sklearn.cluster import HDBSCAN

    labels = HDBSCAN(min_cluster_size=min_cluster_size).fit_predict(vectors)
    noise = labels < 0
    labels[noise] = -1 - np.flatnonzero(noise)  # noise: each photo alone
    return labels, float(noise.mean())


def score(truth, labels, seconds, **extra) -> dict:
    from embedkit.evaluation.clustering import clustering_report

    report = clustering_report(truth, labels)
    report.update(seconds=round(seconds, 2), **extra)
    return report


def timed(fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def best(reports: list[dict], min_precision: float | None = None) -> dict:
    """Best BCubed F (among those reaching ``min_precision``, if any do)."""
    pool = [r for r in reports if min_precision is None or r["bcubed_precision"] >= min_precision] or reports
    return max(pool, key=lambda r: r["bcubed_f"])


def tune(vectors, truth) -> tuple[dict, list[dict]]:
    reports = []
    for threshold in TUNE_THRESHOLDS:
        for relative in TUNE_RELATIVE:
            for relative_min in (TUNE_RELATIVE_MIN if relative else (TUNE_RELATIVE_MIN[0],)):
                labels, seconds = timed(embedkit_labels, vectors, threshold, relative, relative_min)
                reports.append(score(truth, labels, seconds, threshold=threshold, relative=relative,
                                     relative_min=relative_min))
                print(f"tune t={threshold} rel={relative} min={relative_min}: F {reports[-1]['bcubed_f']:.4f} "
                      f"P {reports[-1]['bcubed_precision']:.4f}", flush=True)
    return best(reports, TARGET_PRECISION), reports


def compare_on(name, vectors, truth, chosen, distances=AVERAGE_LINK_DISTANCES, sizes=HDBSCAN_SIZES) -> dict:
    out = {"set": name, "n_photos": int(len(truth)), "n_people": int(len(set(truth.tolist())))}
    labels, seconds = timed(embedkit_labels, vectors, chosen["threshold"], chosen["relative"],
                            chosen["relative_min"])
    out["embedkit"] = score(truth, labels, seconds, setting=(f"threshold {chosen['threshold']}, relative "
                                                              f"{chosen['relative']} (min {chosen['relative_min']})"))
    print(f"{name} embedkit: F {out['embedkit']['bcubed_f']:.4f} P {out['embedkit']['bcubed_precision']:.4f}",
          flush=True)
    runs = []
    for distance in distances:
        labels, seconds = timed(average_link_labels, vectors, distance)
        runs.append(score(truth, labels, seconds, setting=f"cosine distance {distance}"))
        print(f"{name} average-link {distance}: F {runs[-1]['bcubed_f']:.4f}", flush=True)
    out["average_link_runs"] = runs
    out["average_link"] = best(runs)
    runs = []
    for size in sizes:
        (labels, noise), seconds = timed(hdbscan_labels, vectors, size)
        runs.append(score(truth, labels, seconds, setting=f"min_cluster_size {size}", noise=round(noise, 4)))
        print(f"{name} hdbscan {size}: F {runs[-1]['bcubed_f']:.4f}", flush=True)
    out["hdbscan_runs"] = runs
    out["hdbscan"] = best(runs)
    return out


# -- speed -----------------------------------------------------------------------------------------

def speed(data: dict, n_new: int = 100) -> dict:
    """Cluster every cached face through the library (index on disk), then 100 more."""
    from embedkit.index import FaceIndex
    from embedkit.people import cluster

    photo = data["photo"]
    n_photos = len(data["paths"])
    # the last photos with faces are held back as the new ones
    with_faces = np.unique(photo)
    held_photos, held_faces = [], 0
    for p in with_faces[::-1]:
        held_photos.append(int(p))
        held_faces += int((photo == p).sum())
        if held_faces >= n_new:
            break
    held = set(held_photos)
    folder = Path(tempfile.mkdtemp(prefix="bench-people-"))
    try:
        with FaceIndex.create(folder) as index:
            _store_faces(index, data, [p for p in range(n_photos) if p not in held])
            first_faces = index.store.counts()["faces"]
            first = cluster(index, threshold=None)
            _store_faces(index, data, sorted(held))
            second = cluster(index, threshold=None)
        return {"faces": first_faces, "first_seconds": first.seconds, "first": first.to_dict(),
                "new_faces": held_faces,
                "second_seconds": second.seconds, "second": second.to_dict(),
                "load_average": os.getloadavg()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _store_faces(index, data: dict, photos: list[int]) -> None:
    """Put cached faces into an index as ``embedkit index`` would (no images read)."""
    import json

    store = index.store
    dim = data["vectors"].shape[1]
    store.begin_write()
    try:
        if store.get_info("model_id") is None:
            store.set_info_many({"model_id": str(data["model_id"]), "backbone": "facenet", "embedding_dim": str(dim),
                                 "extractor": json.dumps({"detector": "yunet", "center_crop": 1.0, "size": 160}),
                                 "factory": "IDMap,Flat", "source": json.dumps({"backbone": None, "detector": "yunet",
                                                                                "no_detect": False,
                                                                                "center_crop": 1.0,
                                                                                "weights": "pretrained"})})
        rows = np.flatnonzero(np.isin(data["photo"], photos))
        by_photo: dict[int, list[int]] = {}
        for row in rows:
            by_photo.setdefault(int(data["photo"][row]), []).append(int(row))
        for p in photos:
            path = str(data["paths"][p])
            sha = f"bench-{p}"
            faces = [SimpleNamespace(face_no=no, box=tuple(float(v) for v in data["boxes"][row]),
                                     score=float(data["scores"][row]),
                                     image_size=tuple(int(v) for v in data["image_sizes"][p][::-1]))
                     for no, row in enumerate(by_photo.get(p, []))]
            store.add_content(sha, faces, data["vectors"][by_photo.get(p, [])])
            store.upsert_file(path, sha, 0, 0, None)
        store.bump_generation()
        store.commit()
    except BaseException:
        store.rollback()
        raise


# -- report ----------------------------------------------------------------------------------------

def _row(method: str, r: dict) -> dict:
    return {
        "method": method, "setting": r.get("setting", ""),
        "BCubed P": f"{r['bcubed_precision']:.4f}", "BCubed R": f"{r['bcubed_recall']:.4f}",
        "BCubed F": f"{r['bcubed_f']:.4f}", "pairwise F": f"{r['pairwise_f']:.4f}",
        "clusters": r["n_clusters"], "singletons alone": f"{r['singletons_alone']} of {r['true_singletons']}",
        "noise": f"{100 * r['noise']:.1f}%" if "noise" in r else "",
        "s": f"{r['seconds']:.1f}",
    }


def markdown(results: dict) -> str:
    chosen = results["tuned"]
    lines = [
        "Face clustering on LFW (`python benchmarks/bench_people.py`): pretrained facenet, YuNet + alignment, "
        "the main face of each photo; every method clusters the same embeddings in this run. BCubed and "
        "pairwise scores against LFW's identities; HDBSCAN noise counts as one cluster per photo.",
        "",
        f"embedkit's settings were chosen on LFW people with fewer than 5 photos ({results['tune_set']['n_photos']} "
        f"photos, {results['tune_set']['n_people']} people), identity-disjoint from set (a): best BCubed F with "
        f"precision >= {TARGET_PRECISION}: merge threshold {chosen['threshold']}, relative condition "
        f"{chosen['relative']} for groups of >= {chosen['relative_min']} faces (tune F {chosen['bcubed_f']:.4f}, "
        f"P {chosen['bcubed_precision']:.4f}). The baselines' settings are their best on each set itself.",
    ]
    for key in ("a", "b"):
        block = results.get(key)
        if not block:
            continue
        lines += ["", f"**({key}) {block['title']}**: {block['n_photos']} photos of {block['n_people']} people", "",
                  markdown_table([_row("embedkit cluster", block["embedkit"]),
                                  _row("scikit-learn average-link", block["average_link"]),
                                  _row("scikit-learn HDBSCAN", block["hdbscan"])])]
    sp = results.get("speed")
    if sp:
        lines += ["", f"**Speed** (library `cluster()` on an index on disk, SQLite included; load average "
                      f"{sp['load_average'][0]:.1f} when measured): {sp['faces']} faces clustered in "
                      f"{sp['first_seconds']:.2f} s; {sp['new_faces']} new faces added and `cluster` run again: "
                      f"{sp['second_seconds']:.2f} s ({sp['second']['considered']} faces looked at: the new ones "
                      f"and those left unassigned before)."]
    lines += ["", "Not run here: face_recognition / dlib `chinese_whispers_clustering` (needs its own virtualenv, "
                  "see `benchmarks/bench_peers.py --setup`)."] if not results.get("dlib") else []
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-b", action="store_true", help="Skip set (b), all 13,233 photos.")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args(argv)

    path = fill()  # no-op when the cache is complete
    data = load_cache(path)
    results: dict = {"command": "python benchmarks/bench_people.py " + " ".join(argv or sys.argv[1:]),
                     "model_id": str(data["model_id"]), "cache": str(path.name)}
    if not args.no_speed or args.speed_only:
        results["speed"] = speed(data)
        print(f"speed: {results['speed']['faces']} faces {results['speed']['first_seconds']} s, "
              f"+{results['speed']['new_faces']} {results['speed']['second_seconds']} s", flush=True)
    if not args.speed_only:
        faces = main_faces(data)
        counts = photo_counts()
        people = faces["people"]
        n_photos = np.array([counts[p] for p in people])
        results["photos_without_face"] = faces["no_face"]
        tune_mask = n_photos < 5
        chosen, tune_runs = tune(faces["vectors"][tune_mask], people[tune_mask])
        results["tune_set"] = {"n_photos": int(tune_mask.sum()), "n_people": int(len(set(people[tune_mask])))}
        results["tuned"] = chosen
        results["tune_runs"] = tune_runs
        a = ~tune_mask
        results["a"] = compare_on("a", faces["vectors"][a], people[a], chosen)
        results["a"]["title"] = "LFW people with at least 5 photos"
        if not args.no_b:
            results["b"] = compare_on("b", faces["vectors"], people, chosen, distances=(0.45, 0.5, 0.55),
                                      sizes=(2, 3))
            results["b"]["title"] = "all LFW photos"
    results["load_average_end"] = os.getloadavg()
    write_json("people", results)
    write_section("people", markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
