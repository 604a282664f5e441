"""Score fusion of the two shipped backbones (facenet + sface) on LFW's 10-fold protocol (issue 10).

Every photo of ``lfw/pairs.txt`` is embedded once per backbone (YuNet detection
and each backbone's own alignment, the subject face as in
:func:`embedkit.evaluation.evaluate.embed_images`); the embeddings are cached
under ``benchmarks/.cache/`` (git-ignored), so a rerun only re-scores.

Scores per pair: facenet cosine, sface cosine, ``fused-z`` (mean of the two
cosines after z-normalising each model's scores with the mean and standard
deviation of the *training* folds' pairs, per test fold) and ``fused-mean``
(plain mean of the two cosines). A photo without a face scores the pair
``MISSING_SCORE`` for that model, a "different" verdict, as in
``bench_lfw.py``; a fused score averages the models that have both faces and
is missing only when neither has.

Accuracy: for each fold, the accuracy-maximising threshold of the other nine
(``metrics.best_threshold``) is applied to it; mean ± std over folds. AUC and
TAR@FAR=1e-3 over all pairs (``metrics.verification_report``; for ``fused-z``
with the z-statistics of all pairs, which use no labels). McNemar
(``metrics.mcnemar``) compares each fusion's per-pair verdicts against the
better single model's.

    python benchmarks/bench_fusion.py
    python benchmarks/bench_fusion.py --folds 2        # quick check on the first 2 folds

Writes section ``fusion`` of ``benchmarks/RESULTS.md`` and
``benchmarks/results/fusion.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.bench_lfw import DEFAULT_IMAGES, DEFAULT_PAIRS, lfw_pair_arrays  # noqa: E402
from benchmarks.results import BENCH_DIR, markdown_table, write_json, write_section  # noqa: E402

CACHE_DIR = BENCH_DIR / ".cache" / "fusion"
BACKBONES = ("facenet", "sface")
MISSING = -1.0  # embedkit.evaluation.evaluate.MISSING_SCORE
CHUNK = 250  # photos embedded between cache saves


def _cache_path(backbone: str) -> Path:
    return CACHE_DIR / f"{backbone}.npz"


def _load_cache(backbone: str) -> tuple[dict, set]:
    path = _cache_path(backbone)
    if not path.is_file():
        return {}, set()
    data = np.load(path, allow_pickle=False)
    vectors = dict(zip(data["paths"].tolist(), data["vectors"]))
    return vectors, set(data["missing"].tolist())


def _save_cache(backbone: str, vectors: dict, missing: set) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    paths = sorted(vectors)
    dim = len(next(iter(vectors.values()))) if vectors else 0
    tmp = _cache_path(backbone).with_suffix(".tmp.npz")
    np.savez(tmp, paths=np.array(paths, dtype=str),
             vectors=np.stack([vectors[p] for p in paths]) if paths else np.zeros((0, dim), np.float32),
             missing=np.array(sorted(missing), dtype=str))
    os.replace(tmp, _cache_path(backbone))


def embed_backbone(backbone: str, paths: list[str], runtime: str) -> tuple[dict, set, float | None]:
    """path -> subject-face embedding, and the photos without one; resumes from the cache."""
    vectors, missing = _load_cache(backbone)
    todo = [p for p in paths if p not in vectors and p not in missing]
    if not todo:
        print(f"[{backbone}] all {len(paths)} photos cached", flush=True)
        return vectors, missing, None
    from embedkit.evaluation.evaluate import embed_images
    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline
    from embedkit.runtime import load_encoder

    encoder = load_encoder(None, backbone, job="bulk", backend=runtime)
    pipeline = FacePipeline(encoder, FaceExtractor.for_encoder(encoder, "yunet", 1.0))
    print(f"[{backbone}] embedding {len(todo)} photos ({len(paths) - len(todo)} cached)", flush=True)
    started = time.perf_counter()
    for k in range(0, len(todo), CHUNK):
        done = embed_images(pipeline, todo[k:k + CHUNK])
        vectors.update(done.vectors)
        missing.update(done.no_face)
        missing.update(e["path"] for e in done.errors)
        _save_cache(backbone, vectors, missing)
        n = min(k + CHUNK, len(todo))
        print(f"[{backbone}] {n}/{len(todo)}  {n / (time.perf_counter() - started):.1f} photos/s", flush=True)
    return vectors, missing, len(todo) / (time.perf_counter() - started)


def pair_scores(vectors: dict, paths_a: list[str], paths_b: list[str]) -> np.ndarray:
    """Cosine per pair (unit vectors), NaN where a photo has no face."""
    scores = np.full(len(paths_a), np.nan)
    for k, (a, b) in enumerate(zip(paths_a, paths_b)):
        va, vb = vectors.get(a), vectors.get(b)
        if va is not None and vb is not None:
            scores[k] = float(np.dot(va, vb))
    return scores


def _fuse(columns: list[np.ndarray]) -> np.ndarray:
    """Mean of the available scores per pair; MISSING (below everything) where none is."""
    stacked = np.vstack(columns)
    have = ~np.isnan(stacked)
    total = np.where(have, stacked, 0.0).sum(axis=0)
    count = have.sum(axis=0)
    floor = min(MISSING, float(np.nanmin(stacked)) - 1.0) if have.any() else MISSING
    return np.where(count > 0, total / np.maximum(count, 1), floor)


def _z(raw: np.ndarray, fit: np.ndarray) -> np.ndarray:
    ref = raw[fit & ~np.isnan(raw)]
    return (raw - ref.mean()) / ref.std()


def fold_scores(name: str, raw: dict, fit: np.ndarray) -> np.ndarray:
    """The scores of method ``name``, with any normalisation fitted on the pairs ``fit``."""
    if name in BACKBONES:
        return np.where(np.isnan(raw[name]), MISSING, raw[name])
    if name == "fused-mean":
        return _fuse([raw[b] for b in BACKBONES])
    if name == "fused-z":
        return _fuse([_z(raw[b], fit) for b in BACKBONES])
    raise ValueError(name)


def evaluate(name: str, raw: dict, same: np.ndarray, folds: np.ndarray) -> dict:
    from embedkit.evaluation.metrics import best_threshold, verification_report

    correct = np.zeros(same.size, dtype=bool)
    accuracies, thresholds = [], []
    for f in np.unique(folds):
        test = folds == f
        scores = fold_scores(name, raw, ~test)  # normalisation from the training folds only
        threshold, _ = best_threshold(scores[~test], same[~test])
        correct[test] = (scores[test] >= threshold) == same[test]  # the library's rule (verification_report)
        accuracies.append(float(correct[test].mean()))
        thresholds.append(threshold)
    overall = verification_report(fold_scores(name, raw, np.ones(same.size, bool)), same, folds=folds)
    if name in BACKBONES:  # same protocol as verification_report: must agree
        assert abs(overall["accuracy"] - float(np.mean(accuracies))) < 1e-9, (name, overall["accuracy"])
    return {"model": name, "accuracy": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
            "fold_accuracies": [float(a) for a in accuracies], "fold_thresholds": thresholds,
            "auc": overall["auc"], "eer": overall["eer"], "tar_at_far_1e-2": overall["tar_at_far_1e-2"],
            "tar_at_far_1e-3": overall["tar_at_far_1e-3"], "n_correct": int(correct.sum()),
            "_correct": correct}


def row(r: dict) -> dict:
    return {"model": r["model"],
            "10-fold accuracy": f"{100 * r['accuracy']:.2f}% ± {100 * r['accuracy_std']:.2f}",
            "AUC": f"{r['auc']:.4f}", "TAR@FAR=1e-3": f"{100 * r['tar_at_far_1e-3']:.2f}%",
            "pairs right": f"{r['n_correct']} of {r['_correct'].size}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--folds", type=int, default=None, help="Only the first K folds (quick check).")
    parser.add_argument("--runtime", default="tensorflow", choices=("tensorflow", "litert", "auto"),
                        help="facenet's inference back-end; sface always runs on OpenCV.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    parser.add_argument("--embed-only", choices=BACKBONES, default=None,
                        help="Only fill this backbone's embedding cache (run one per backbone in parallel).")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_fusion.py " + " ".join(argv if argv is not None else sys.argv[1:])

    from embedkit.evaluation.metrics import mcnemar

    # Fold by fold, so an interrupted embedding run leaves whole folds cached (see --folds).
    paths_a, paths_b, photos, same, folds = lfw_pair_arrays(args.pairs, args.images, args.folds)

    if args.embed_only:
        embed_backbone(args.embed_only, photos, args.runtime)
        return 0
    raw, photo_stats = {}, {}
    for backbone in BACKBONES:
        vectors, missing, speed = embed_backbone(backbone, photos, args.runtime)
        raw[backbone] = pair_scores(vectors, paths_a, paths_b)
        photo_stats[backbone] = {"n_photos": len(photos), "no_face": sum(p in missing for p in photos),
                                 "pairs_with_missing": int(np.isnan(raw[backbone]).sum()),
                                 "photos_per_second": None if speed is None else round(speed, 2)}

    results = [evaluate(name, raw, same, folds) for name in (*BACKBONES, "fused-z", "fused-mean")]
    singles = [r for r in results if r["model"] in BACKBONES]
    best_single = max(singles, key=lambda r: (r["accuracy"], r["n_correct"]))
    tests = {}
    for fused in (r for r in results if r["model"].startswith("fused")):
        tests[fused["model"]] = {"against": best_single["model"],
                                 **mcnemar(best_single["_correct"], fused["_correct"])}
    z = tests["fused-z"]
    beats_both = all(results[2]["accuracy"] > r["accuracy"] for r in singles)
    significant = z["verdict"] == "better"
    verdict = (f"Fusion (fused-z) {'beats' if beats_both else 'does not beat'} both single models on 10-fold "
               f"accuracy; against {best_single['model']} the difference is "
               f"{'significant' if significant else 'not significant'} (McNemar p = {z['p_value']:.3g}).")

    table = markdown_table([row(r) for r in results])
    mcnemar_lines = [f"McNemar, {name} vs {t['against']} on the same {t['n_pairs']} pair verdicts (each pair at "
                     f"its own fold's threshold): {t['only_before_right']} pairs only {t['against']} got right, "
                     f"{t['only_after_right']} only {name}; p = {t['p_value']:.3g} ({t['verdict']})."
                     for name, t in tests.items()]
    print(table)
    print("\n".join(mcnemar_lines))
    print(verdict)
    if args.no_write:
        return 0

    for r in results:
        r.pop("_correct")
    write_json("fusion", {"n_pairs": int(same.size), "command": command, "photos": photo_stats,
                          "best_single": best_single["model"], "models": results, "mcnemar": tests,
                          "fusion_beats_both": beats_both, "fusion_significantly_better": significant})
    missing_note = "; ".join(f"{b}: {s['no_face']} of {s['n_photos']} photos without a face "
                             f"({s['pairs_with_missing']} pairs)" for b, s in photo_stats.items())
    body = "\n".join([
        "### LFW score fusion, facenet + sface",
        "",
        f"{same.size} pairs of `lfw/pairs.txt` (deep-funneled photos, YuNet detection + each backbone's "
        "alignment, subject face), 10-fold protocol: each fold scored at the threshold best on the other nine. "
        "`fused-z`: mean of the two cosines, each z-normalised with the mean/std of the training folds' pairs; "
        "`fused-mean`: plain mean of the two cosines. AUC and TAR@FAR=1e-3 over all pairs. A photo without a "
        f"face makes that model's pair score -1 (a 'different' verdict); a fused score uses the models that "
        f"found both faces ({missing_note}).",
        "",
        table,
        "",
        *mcnemar_lines,
        "",
        verdict,
        "",
        f"Command: `{command.strip()}`",
    ])
    write_section("fusion", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
