"""AT&T clustered into people as ``embedkit index --labels`` and ``embedkit cluster`` do, per backbone,
and why pretrained facenet keeps one AT&T person in two pieces.

All 400 AT&T photos (40 people, 10 photos each, taken in sessions) are indexed
with the default face settings (YuNet detection and alignment) by each
pretrained backbone in ``BACKBONES`` and clustered by the library with its
defaults (``embedkit.people.cluster``: merge threshold = the backbone's
same-person threshold + 0.1, relative condition, its ceiling and the lone-pair
floor from the backbone's impostor reference). Reported: BCubed scores, every
person split over several clusters (pieces, their average-link similarity,
each piece's within-similarity, and what kept them apart) and every cluster
holding several people.

Then, for each split person, the **dominance check** on LFW: set (a) (people
with at least 5 photos, the backbone's cached embeddings from
``benchmarks/lfw_cache.py``, main face per photo) is clustered with the same
defaults, and every pair of its clusters of *different* people (both of at
least ``RELATIVE_MIN`` faces) is compared with the split person's pieces. A
pair dominates the pieces when its similarity is at least theirs, its two
within-similarities are at most theirs and its two sizes at least theirs
(smaller with smaller, larger with larger): a merge rule that asks more of
tighter groups and less of more alike or larger ones (as the relative
condition, its ceiling and the lone-pair floor all do) merges such a pair
whenever it merges the pieces. If dominating pairs exist, no such rule can join the person
without also merging those different people.

Last, the **ceiling sweep**: the relative condition's ceiling moved from the
score 1 in 10,000 pairs of strangers reach (the library's) to 1 in 3,333,
2,000 and 1,000, on AT&T and on LFW set (a), to show what joining the split
pieces by a lower ceiling would cost on LFW.

    python benchmarks/bench_people_att.py          # both backbones (fills the LFW caches if needed)
    python benchmarks/bench_people_att.py --repeats 1   # quicker: each backbone indexes AT&T once

Indexing time (``FaceIndex.update`` of the 400 photos, models loaded once and
not timed; backbones alternating, median of ``--repeats`` runs) is reported
with the machine's load average: the ratio between backbones is the figure,
and only from a run on otherwise idle cores.

Writes section ``people_att`` of ``benchmarks/RESULTS.md`` and
``benchmarks/results/people_att.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_peers import DEFAULT_VENV  # noqa: E402
from benchmarks.lfw_cache import FACES, fill, load_cache  # noqa: E402
from benchmarks.results import markdown_table, write_json, write_section  # noqa: E402

ATT = FACES / "att"
BACKBONES = ("facenet", "facenet+sface")
# Shares of strangers' pairs at or above the relative condition's ceiling: the library's, then lower ceilings.
SHARES = (1e-4, 3e-4, 5e-4, 1e-3)
DOMINATING_SHOWN = 8
PEER = "face_recognition"  # the peer timed on the same photos (bench_peers' dlib worker)


def att_pipeline(backbone: str):
    """The pipeline ``embedkit index --backbone BACKBONE`` builds (default face settings), and its source."""
    from embedkit.cli.common import pipeline_source
    from embedkit.pipeline import pipeline_from_source

    source = pipeline_source({"backbone": backbone})
    return pipeline_from_source(source, job="bulk"), source


def att_index(folder: Path, pipeline, source: dict) -> float:
    """Index every AT&T photo into a new index at ``folder`` as ``embedkit index --labels`` does;
    returns the seconds ``FaceIndex.update`` took (decode, detect, align, embed, store)."""
    from embedkit.index import FaceIndex

    with FaceIndex.create(folder) as index:
        started = time.perf_counter()
        index.update(ATT, pipeline, labels=True, source=source)
        return time.perf_counter() - started


def index_times(work: Path, repeats: int, venv: Path | None) -> tuple[dict, dict]:
    """Each backbone's AT&T index (the last one made) and its indexing seconds, backbones alternating
    ``repeats`` times with their pipelines loaded once (model loading is not timed); with ``venv`` (the
    peers' virtualenv), face_recognition's own embed loop over the same photos takes its turn in each
    round (``bench_peers``' worker: models loaded before timing)."""
    from benchmarks.bench_peers import peer_embeddings

    pipelines = {backbone: att_pipeline(backbone) for backbone in BACKBONES}
    seconds: dict = {backbone: [] for backbone in BACKBONES}
    photos = sorted(str(p) for p in ATT.glob("*/*") if p.is_file())
    if venv is not None:
        seconds[PEER] = []
    folders = {}
    for k in range(repeats):
        for backbone in BACKBONES:
            folders[backbone] = work / f"{backbone.replace('+', '-')}-{k}"
            seconds[backbone].append(round(att_index(folders[backbone], *pipelines[backbone]), 2))
            print(f"{backbone}: indexed in {seconds[backbone][-1]} s", flush=True)
        if venv is not None:
            seconds[PEER].append(round(peer_embeddings(venv, "dlib", photos, work)[2], 2))
            print(f"{PEER}: embedded in {seconds[PEER][-1]} s", flush=True)
    return folders, seconds


def within(vectors: np.ndarray) -> float:
    """Mean cosine similarity over the pairs of a group's unit vectors."""
    n = len(vectors)
    total = vectors.sum(0)
    return float((total @ total - n) / (n * (n - 1))) if n > 1 else float("nan")


def scores(truth, labels) -> dict:
    from embedkit.evaluation.clustering import clustering_report

    r = clustering_report(truth, labels)
    return {k: r[k] for k in ("n_clusters", "bcubed_precision", "bcubed_recall", "bcubed_f")}


def kept_apart_by(sim: float, sizes, tight, setting: dict) -> str:
    """Which of the library's conditions two pieces fail (see ``embedkit.people.cluster.agglomerate``)."""
    from embedkit.people.cluster import pair_floor_needs, relative_needs

    if sim < setting["threshold"]:
        return "below the merge threshold"
    floor = setting["pair_floor"]
    if floor is not None and floor > setting["threshold"] and sim < pair_floor_needs(setting["threshold"], floor,
                                                                                       sizes[0] * sizes[1]):
        return "lone-pair floor"
    ceiling = setting["ceiling"]
    if min(sizes) >= setting["relative_min"] and (ceiling is None or sim < ceiling):
        if sim < relative_needs(setting["relative"], *tight):
            return "relative condition"
    return "other (cannot-link)"


def splits(vectors, truth, labels, paths, setting: dict) -> list[dict]:
    """Each person found in more than one cluster: the pieces and what kept them apart."""
    from embedkit.people.cluster import relative_needs

    out = []
    for person in sorted(set(truth.tolist()), key=lambda p: int(p[1:]) if p[1:].isdigit() else p):
        mask = truth == person
        pieces = sorted(Counter(labels[mask].tolist()).items(), key=lambda kv: -kv[1])
        if len(pieces) < 2:
            continue
        parts = [vectors[mask & (labels == k)] for k, _ in pieces]
        files = [sorted(Path(p).name for p in paths[mask & (labels == k)]) for k, _ in pieces]
        pairs = []
        for i in range(len(parts)):
            for j in range(i + 1, len(parts)):
                sim = float(parts[i].mean(0) @ parts[j].mean(0))
                tight = [within(parts[i]), within(parts[j])]
                sizes = (len(parts[i]), len(parts[j]))
                pairs.append({"pieces": [i, j], "sizes": list(sizes), "similarity": round(sim, 4),
                              "within": [round(t, 4) for t in tight],
                              "relative_needs": round(relative_needs(setting["relative"], *tight), 4),
                              "kept_apart_by": kept_apart_by(sim, sizes, tight, setting)})
        out.append({"person": person, "sizes": [len(p) for p in parts], "files": files, "pairs": pairs})
    return out


def merged(truth, labels) -> list[list[str]]:
    """The clusters holding faces of more than one person: the people in each."""
    out = []
    for label in np.unique(labels):
        people = sorted(set(truth[labels == label].tolist()))
        if len(people) > 1:
            out.append(people)
    return out


def cluster_pairs(vectors, truth, labels, relative_min: int) -> list[dict]:
    """Every pair of clusters of ``relative_min`` faces or more whose majority people differ."""
    groups = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    groups = [g for g in groups if len(g) >= relative_min]
    means = np.stack([vectors[g].mean(0) for g in groups])
    tight = np.array([within(vectors[g]) for g in groups])
    owner = [Counter(truth[g].tolist()).most_common(1)[0][0] for g in groups]
    sims = means @ means.T
    out = []
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            if owner[i] != owner[j]:
                out.append({"similarity": float(sims[i, j]), "within": sorted([float(tight[i]), float(tight[j])]),
                            "sizes": [len(groups[i]), len(groups[j])], "people": [owner[i], owner[j]]})
    return out


def dominating(pair: dict, candidates: list[dict]) -> list[dict]:
    """The candidate pairs of different people at least as alike as ``pair``, no tighter, and of at least
    as many faces (within-similarities and sizes compared smaller with smaller, larger with larger)."""
    low, high = sorted(pair["within"])
    small, big = sorted(pair["sizes"])
    found = [c for c in candidates
             if c["similarity"] >= pair["similarity"] and c["within"][0] <= low and c["within"][1] <= high
             and min(c["sizes"]) >= small and max(c["sizes"]) >= big]
    return sorted(found, key=lambda c: -c["similarity"])


def lfw_set_a(backbone: str):
    """Set (a) of ``bench_people``: the backbone's cached main-face vectors and their people."""
    from benchmarks.bench_people import main_faces, photo_counts

    faces = main_faces(load_cache(fill(backbone=backbone)))
    counts = photo_counts()
    keep = np.array([counts[p] >= 5 for p in faces["people"]])
    return faces["vectors"][keep], faces["people"][keep]


def library_setting(backbone: str, n_faces: int, share: float = SHARES[0]) -> dict:
    """``embedkit cluster``'s settings for a library of ``n_faces`` faces of this pretrained backbone (YuNet),
    with the relative condition's ceiling at ``share`` of strangers' pairs."""
    from benchmarks.bench_people import backbone_reference, library_default
    from embedkit.people.people import lone_pair_floor

    reference = backbone_reference(backbone)
    default = library_default(backbone)
    return {"threshold": default["threshold"], "relative": default["relative"],
            "relative_min": default["relative_min"], "ceiling": float(reference.score_at(1.0 - share)),
            "pair_floor": lone_pair_floor(reference, n_faces), "share": share}


def cluster_at(vectors, setting: dict) -> np.ndarray:
    from embedkit.people.cluster import cluster_vectors

    return cluster_vectors(vectors, setting["threshold"], relative=setting["relative"],
                           relative_min=setting["relative_min"], ceiling=setting["ceiling"],
                           pair_floor=setting["pair_floor"])


def run_backbone(backbone: str, folder: Path) -> dict:
    from embedkit import people
    from embedkit.index import FaceIndex

    with FaceIndex.open(folder) as index:
        report = people.cluster(index)
        ids, vectors = index.store.all_vectors(index.dim)
        faces = index.store.describe_faces(ids.tolist())
        owners = people.persons_of(index, ids.tolist())
        model_id = index.info.get("model_id")
    truth = np.array([faces[int(f)]["label"] for f in ids])
    paths = np.array([faces[int(f)]["paths"][0] for f in ids])
    labels = np.array([owners[int(f)]["person_id"] if int(f) in owners else -int(f) for f in ids])
    att_settings = {share: library_setting(backbone, len(ids), share) for share in SHARES}
    att_labels = {share: cluster_at(vectors, att_settings[share]) for share in SHARES}
    setting = att_settings[SHARES[0]]  # the library's
    # The benchmark's own clustering must be the library's, or its sweep and its reasons say nothing about it.
    assert scores(truth, att_labels[SHARES[0]]) == scores(truth, labels), "library and benchmark disagree"
    assert abs(setting["threshold"] - report.threshold) < 1e-3, (setting, report)
    out = {"backbone": backbone, "model_id": model_id, "n_photos": int(len(ids)),
           "n_people": int(len(set(truth.tolist()))), "setting": setting, "default": scores(truth, labels),
           "splits": splits(vectors, truth, labels, paths, setting), "merged": merged(truth, labels)}
    print(backbone, out["default"], flush=True)
    lfw_vectors, lfw_truth = lfw_set_a(backbone)
    lfw_labels = {share: cluster_at(lfw_vectors, library_setting(backbone, len(lfw_vectors), share))
                  for share in SHARES}
    candidates = cluster_pairs(lfw_vectors, lfw_truth, lfw_labels[SHARES[0]], setting["relative_min"])
    out["lfw_pairs_compared"] = len(candidates)
    for split in out["splits"]:
        for pair in split["pairs"]:
            found = dominating(pair, candidates)
            pair["dominated_by"] = len(found)
            pair["dominating"] = [{**c, "similarity": round(c["similarity"], 4),
                                   "within": [round(w, 4) for w in c["within"]]} for c in found[:DOMINATING_SHOWN]]
    out["sweep"] = [{"share": share, "ceiling": round(att_settings[share]["ceiling"], 4),
                     "att": scores(truth, att_labels[share]), "lfw_a": scores(lfw_truth, lfw_labels[share])}
                    for share in SHARES]
    for row in out["sweep"]:
        print(backbone, row, flush=True)
    out["lfw_a"] = {"n_photos": int(len(lfw_vectors)), "n_people": int(len(set(lfw_truth.tolist())))}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3,
                        help="Index AT&T this many times per backbone, alternating (timing: the median).")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help="The peers' virtualenv (bench_peers.py --setup): face_recognition is timed too.")
    args = parser.parse_args(argv)
    venv = args.venv if (args.venv / "bin" / "python").exists() else None
    results = {"command": " ".join(["python benchmarks/bench_people_att.py", *(argv or sys.argv[1:])]),
               "backbones": {}}
    with tempfile.TemporaryDirectory(prefix="bench-people-att-") as work:
        before = os.getloadavg()
        folders, seconds = index_times(Path(work), args.repeats, venv)
        results["indexing"] = {"seconds": seconds, "median": {b: float(np.median(t)) for b, t in seconds.items()},
                               "load_average_before": before, "load_average": os.getloadavg()}
        for backbone in BACKBONES:
            results["backbones"][backbone] = run_backbone(backbone, folders[backbone])
    write_json("people_att", results)
    write_section("people_att", markdown(results))
    print(markdown(results))
    return 0


def _pieces_rows(r: dict) -> list[dict]:
    rows = []
    for s in r["splits"]:
        for p in s["pairs"]:
            i, j = p["pieces"]
            shown = "; ".join(f"{' / '.join(c['people'])} {c['similarity']:.3f} (within {c['within'][0]:.3f}, "
                              f"{c['within'][1]:.3f}; {c['sizes'][0]} + {c['sizes'][1]} faces)"
                              for c in p["dominating"][:3])
            rows.append({"backbone": r["backbone"], "person": s["person"],
                         "pieces": f"{s['sizes'][i]} + {s['sizes'][j]}",
                         "photos": f"{', '.join(s['files'][i])} / {', '.join(s['files'][j])}",
                         "similarity": f"{p['similarity']:.3f}",
                         "within": f"{p['within'][0]:.3f} / {p['within'][1]:.3f}",
                         "relative needs": f"{p['relative_needs']:.3f}", "kept apart by": p["kept_apart_by"],
                         "LFW (a) pairs of different people dominating it": f"{p['dominated_by']}"
                                                                             + (f": {shown}" if shown else "")})
    return rows


def markdown(results: dict) -> str:
    runs = list(results["backbones"].values())
    rows = []
    for r in runs:
        d, s = r["default"], r["setting"]
        split = ", ".join(f"{x['person']} ({' + '.join(str(n) for n in x['sizes'])})" for x in r["splits"])
        rows.append({"backbone": r["backbone"], "merge threshold": f"{s['threshold']:.3f}",
                     "relative condition": f"{s['relative']} (groups >= {s['relative_min']})",
                     "ceiling (1 in 10,000 strangers)": f"{s['ceiling']:.3f}",
                     "clusters": d["n_clusters"], "BCubed P": f"{d['bcubed_precision']:.4f}",
                     "BCubed R": f"{d['bcubed_recall']:.4f}", "BCubed F": f"{d['bcubed_f']:.4f}",
                     "people split": split or "none",
                     "clusters with several people": "; ".join(" + ".join(m) for m in r["merged"]) or "none"})
    lines = [f"AT&T clustered as `embedkit index --labels [--backbone B]` then `embedkit cluster` do "
             f"(`{results['command']}`): all {runs[0]['n_photos']} photos of {runs[0]['n_people']} people, "
             "YuNet detection and alignment, the library's default clustering settings for each pretrained "
             "backbone (merge threshold = its LFW same-person threshold + 0.1; ceiling and lone-pair floor from "
             "its LFW impostor reference; no floor here: 1 in 400 strangers' pairs score below the threshold).",
             "", markdown_table(rows)]
    timing = results.get("indexing")
    if timing:
        median = timing["median"]
        runs_each = len(timing["seconds"][BACKBONES[0]])
        ratios = [f"{b} takes {median[b] / median[BACKBONES[0]]:.2f}x {BACKBONES[0]}'s time" for b in BACKBONES[1:]]
        if PEER in median:
            ratios += [f"{b} runs at {median[PEER] / median[b]:.2f}x {PEER}'s speed" for b in BACKBONES]
        lines += ["", f"Indexing the 400 photos (embedkit: `FaceIndex.update`, i.e. decode, detect, align, embed, "
                      f"store; {PEER}: its own loop of `load_image_file`, `face_locations` (HOG) and "
                      f"`face_encodings`, in the peers' virtualenv; models loaded once and not timed; the tools "
                      f"alternating, median of {runs_each} runs each; load average "
                      f"{timing['load_average_before'][0]:.2f} before the run, {timing['load_average'][0]:.2f} at "
                      f"its end, on {os.cpu_count()} cores): "
                      + "; ".join(f"{b} {median[b]:.1f} s ({', '.join(f'{t:.1f}' for t in timing['seconds'][b])})"
                                  for b in median)
                      + "; " + "; ".join(ratios) + "."]
    pieces = [row for r in runs for row in _pieces_rows(r)]
    if pieces:
        a = runs[0]["lfw_a"]
        lines += ["", f"People split, and the dominance check on LFW set (a) ({a['n_photos']:,} photos of "
                      f"{a['n_people']} people, clustered with the same defaults; "
                      + ", ".join(f"{r['backbone']}: {r['lfw_pairs_compared']:,} pairs of clusters of different "
                                  f"people" for r in runs if r["splits"])
                      + "). A pair of different people's clusters dominates the split pieces when it is at least as "
                        "alike, neither of its clusters is tighter and neither has fewer faces (within-similarities "
                        "and sizes compared smaller with smaller, larger with larger): any rule that asks more of "
                        "tighter groups and less of more alike or larger ones would merge it whenever it joined "
                        "the pieces.", "", markdown_table(pieces)]
    sweep = []
    for r in runs:
        for row in r["sweep"]:
            sweep.append({"backbone": r["backbone"], "ceiling at 1 in": f"{round(1 / row['share']):,} strangers",
                          "ceiling": f"{row['ceiling']:.3f}",
                          "AT&T clusters": row["att"]["n_clusters"],
                          "AT&T BCubed P / F": f"{row['att']['bcubed_precision']:.4f} / {row['att']['bcubed_f']:.4f}",
                          "LFW (a) clusters": row["lfw_a"]["n_clusters"],
                          "LFW (a) BCubed P / F": f"{row['lfw_a']['bcubed_precision']:.4f} / "
                                                  f"{row['lfw_a']['bcubed_f']:.4f}"})
    lines += ["", "The relative condition's ceiling moved down (the first row of each backbone is the library's):",
              "", markdown_table(sweep), "",
              "Each row's clustering is the library's (`cluster_vectors` with `embedkit cluster`'s settings; the "
              "script checks that its default rows match `embedkit.people.cluster` on the index)."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
