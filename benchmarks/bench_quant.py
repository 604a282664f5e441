"""Quantised LiteRT conversions of the facenet encoder, on LFW's 10-fold protocol (issue 10).

Issue 10 allows int8/fp16 inference only where LFW accuracy stays within
0.1 pp of the float model; embedkit ships the float32 conversion, and this
measures what each quantised one would give, for the pretrained facenet encoder:

- ``fp32``: the conversion embedkit ships (``tf.lite.TFLiteConverter`` defaults);
- ``fp16``: float16 weights (``optimizations=[DEFAULT]``, ``supported_types=[float16]``);
- ``int8-dynamic``: int8 weights, activations quantised on the fly (``optimizations=[DEFAULT]``);
- ``int8``: int8 weights and activations, float input/output, calibrated on
  200 UTKFace faces (other people than LFW's), 100 steps.

Every photo of ``lfw/pairs.txt`` is read, YuNet-detected and aligned once
(the subject face, as ``embedkit evaluate`` picks it); the same crops go
through every conversion. Accuracy: LFW's 10 folds, each fold's threshold
from the other nine; McNemar of each conversion's per-pair verdicts against
``fp32``'s. Speed: median seconds to embed 1 face and 32 faces (2 threads,
5 repeats, after a warm-up) in this process; memory: peak RSS of a fresh
process that loads the model and embeds one face. Speed and memory depend
on the machine's load, which is recorded.

    python benchmarks/bench_quant.py
    python benchmarks/bench_quant.py --folds 2          # quick check
    python benchmarks/bench_quant.py --speed-only        # re-time on a quiet machine (cached conversions)

Writes section ``quant`` of ``benchmarks/RESULTS.md`` and ``benchmarks/results/quant.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.bench_lfw import DEFAULT_IMAGES, DEFAULT_PAIRS, FACES, lfw_pair_arrays  # noqa: E402
from benchmarks.results import BENCH_DIR, markdown_table, write_json, write_section  # noqa: E402

CACHE_DIR = BENCH_DIR / ".cache" / "quant"
VARIANTS = ("fp32", "int8-dynamic", "int8", "fp16")
CALIBRATION_FACES = 200
ALLOWED_DROP = 0.001  # issue 10: within 0.1 pp of the float model
MISSING = -1.0


def _crops(photos: list[str]) -> tuple[np.ndarray, list[str]]:
    """Subject-face crops (160 px, facenet framing) of the photos that have a face, cached."""
    from embedkit.faces import FaceExtractor
    from embedkit.faces.select import subject_face

    path = CACHE_DIR / "lfw-crops-facenet-yunet.npz"
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        if data["photos"].tolist() == photos:
            return data["crops"], data["found"].tolist()
    extractor = FaceExtractor(160, "yunet")
    crops, found = [], []
    for k, photo in enumerate(photos):
        faces, _ = extractor.try_file(photo)
        if faces:
            crops.append(faces[subject_face(faces, photo)].crop)
            found.append(photo)
        if k % 1000 == 0:
            print(f"  cropped {k}/{len(photos)}", flush=True)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    stacked = np.stack(crops)
    np.savez(path, photos=np.array(photos, dtype=str), crops=stacked, found=np.array(found, dtype=str))
    return stacked, found


def _calibration_batches(encoder):
    """Representative inputs for full int8: faces of UTKFace (not LFW's people), preprocessed."""
    from embedkit.faces import FaceExtractor

    extractor = FaceExtractor(160, "yunet")
    files = sorted(p for p in (FACES / "utkface").rglob("*") if p.is_file())
    faces = []
    for file in files:
        found, _ = extractor.try_file(file)
        if found:
            faces.append(found[0].crop)
        if len(faces) >= CALIBRATION_FACES:
            break
    batch = encoder.preprocessing(np.stack(faces))

    def batches():
        for step in range(100):
            yield [batch[step * 2 % len(batch):step * 2 % len(batch) + 2]]
    return batches


def convert(variant: str, encoder) -> bytes:
    """The flatbuffer of ``variant`` (cached by variant and the encoder's model id)."""
    path = CACHE_DIR / f"{encoder.model_id}-{variant}.tflite"
    if path.is_file():
        return path.read_bytes()
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(encoder.network)
    if variant != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        converter.representative_dataset = _calibration_batches(encoder)
    with contextlib.redirect_stdout(io.StringIO()):  # the converter lists every tensor it saves
        flatbuffer = converter.convert()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path.write_bytes(flatbuffer)
    return flatbuffer


def embed(model, preprocessing, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    out = []
    for start in range(0, len(crops), batch):
        e = model.run(preprocessing(crops[start:start + batch]))
        out.append(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12))
    return np.concatenate(out)


def _embeddings(variant: str, encoder, model, crops: np.ndarray, found: list[str]) -> tuple[np.ndarray, float | None]:
    """The variant's embeddings of the crops (cached per variant, model and photo list), and the seconds
    they took (None when read from the cache)."""
    path = CACHE_DIR / f"{encoder.model_id}-{variant}-embeddings.npz"
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        if data["found"].tolist() == found:
            return data["vectors"], None
    started = time.perf_counter()
    vectors = embed(model, encoder.preprocessing, crops)
    seconds = round(time.perf_counter() - started, 1)
    np.savez(path, vectors=vectors, found=np.array(found, dtype=str))
    return vectors, seconds


def _scores(vectors_a: np.ndarray, vectors_b: np.ndarray, row_of: dict, paths_a, paths_b) -> np.ndarray:
    return np.array([float(vectors_a[row_of[a]] @ vectors_b[row_of[b]]) if a in row_of and b in row_of
                     else MISSING for a, b in zip(paths_a, paths_b)])


def time_model(model, preprocessing, crops: np.ndarray, repeats: int = 5) -> dict:
    timings = {}
    for n in (1, 32):
        batch = preprocessing(crops[:n])
        model.run(batch)  # warm-up: allocation for this batch size
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.run(batch)
            seconds.append(time.perf_counter() - started)
        timings[f"seconds_{n}"] = float(np.median(seconds))
    return timings


def peak_rss_mb(model_path: Path) -> float:
    """Peak RSS of a fresh process that loads the model and embeds one (blank) face."""
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark across exec into ru_maxrss.
    code = (
        "import re, sys, numpy as np\n"
        "from embedkit.runtime.litert import LiteRTModel\n"
        "m = LiteRTModel(sys.argv[1])\n"
        "m.run(np.zeros((1, 160, 160, 3), np.float32))\n"
        "status = open('/proc/self/status').read()\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(model_path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    return round(float(out.stdout.strip().splitlines()[-1]), 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--folds", type=int, default=None, help="Only the first K folds (quick check).")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--speed-only", action="store_true",
                        help="Re-time the cached conversions; keep the stored accuracy figures.")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_quant.py " + " ".join(argv if argv is not None else sys.argv[1:])

    from embedkit.encoder import Encoder
    from embedkit.evaluation.metrics import fold_verdicts, mcnemar, verification_report
    from embedkit.runtime.litert import LiteRTModel

    paths_a, paths_b, photos, same, folds = lfw_pair_arrays(args.pairs, args.images, args.folds)
    crops, found = _crops(photos)
    row_of = {photo: k for k, photo in enumerate(found)}
    print(f"{len(photos)} photos, {len(found)} with a face, {same.size} pairs", flush=True)

    encoder = Encoder.from_backbone("facenet")
    stored = {}
    if args.speed_only:
        previous = json.loads((BENCH_DIR / "results" / "quant.json").read_text())["results"]
        stored = {r["variant"]: r for r in previous["variants"]}
    results, verdicts, embedded = [], {}, {}
    for variant in args.variants.split(","):
        started = time.perf_counter()
        flatbuffer = convert(variant, encoder)
        convert_s = time.perf_counter() - started
        model = LiteRTModel(flatbuffer, threads=2)
        result = {"variant": variant, "file_mb": round(len(flatbuffer) / 2**20, 1)}
        if args.speed_only:
            result.update({k: v for k, v in stored[variant].items() if k not in result})
        else:
            vectors, embed_s = _embeddings(variant, encoder, model, crops, found)
            embedded[variant] = vectors
            scores = _scores(vectors, vectors, row_of, paths_a, paths_b)
            report = verification_report(scores, same, folds=folds)
            correct = fold_verdicts(scores, same, folds)  # verification_report's accuracy, pair by pair
            verdicts[variant] = correct
            result.update({"accuracy": report["accuracy"], "accuracy_std": report["accuracy_std"],
                           "auc": report["auc"], "tar_at_far_1e-3": report["tar_at_far_1e-3"],
                           "threshold": report["threshold"], "n_correct": int(correct.sum()),
                           "embed_seconds_all": embed_s, "convert_seconds": round(convert_s, 1)})
            if variant != "fp32" and "fp32" in embedded:
                # An index built by one path and searched by another: one photo of each pair from each.
                mixed = _scores(embedded["fp32"], vectors, row_of, paths_a, paths_b)
                result["mixed_with_fp32_accuracy"] = verification_report(mixed, same, folds=folds)["accuracy"]
                result["cosine_to_fp32"] = {"min": float(np.min(np.sum(embedded["fp32"] * vectors, axis=1))),
                                            "median": float(np.median(np.sum(embedded["fp32"] * vectors, axis=1)))}
        result.update(time_model(model, encoder.preprocessing, crops))
        result["peak_rss_mb"] = peak_rss_mb(CACHE_DIR / f"{encoder.model_id}-{variant}.tflite")
        result["load_average_1min"] = round(os.getloadavg()[0], 2)
        results.append(result)
        print(json.dumps(result), flush=True)

    reference = next((r for r in results if r["variant"] == "fp32"), None)
    for r in results:
        if r["variant"] == "fp32" or reference is None:
            continue
        if not args.speed_only:
            r["mcnemar_vs_fp32"] = mcnemar(verdicts["fp32"], verdicts[r["variant"]])
        r["drop_pp"] = round(100 * (reference["accuracy"] - r["accuracy"]), 3)
        r["within_0.1pp"] = r["drop_pp"] <= 100 * ALLOWED_DROP + 1e-9
        r["speedup_1"] = round(reference["seconds_1"] / r["seconds_1"], 2)
        r["speedup_32"] = round(reference["seconds_32"] / r["seconds_32"], 2)

    rows = [{"conversion": r["variant"], "file": f"{r['file_mb']} MB",
             "LFW 10-fold": f"{100 * r['accuracy']:.2f}% ± {100 * r['accuracy_std']:.2f}",
             "pairs right": f"{r['n_correct']} of {same.size}",
             "vs fp32": ("—" if "mcnemar_vs_fp32" not in r else
                         f"{r['drop_pp']:+.2f} pp drop, McNemar p = {r['mcnemar_vs_fp32']['p_value']:.3g} "
                         f"({r['mcnemar_vs_fp32']['verdict']})"),
             "1 face": f"{1000 * r['seconds_1']:.0f} ms", "32 faces": f"{1000 * r['seconds_32']:.0f} ms",
             "peak RSS": f"{r['peak_rss_mb']:.0f} MB", "load": r["load_average_1min"]} for r in results]
    table = markdown_table(rows)
    print(table)
    if args.no_write:
        return 0
    write_json("quant", {"command": command, "n_pairs": int(same.size), "n_photos": len(photos),
                         "n_with_face": len(found), "variants": results})
    body = "\n".join([
        "### Quantised facenet conversions (LiteRT), LFW 10-fold",
        "",
        f"All {same.size} pairs of `pairs.txt` ({len(photos)} photos, {len(found)} with a face; YuNet, facenet "
        "framing, the subject face). Each conversion embeds the same crops; each fold's threshold comes from the "
        "other nine; McNemar compares each conversion's per-pair verdicts with fp32's. Speed: median of 5 in one "
        "process, 2 threads (load average in the last column); peak RSS of a fresh process that loads the model "
        "and embeds one face. Allowed: at most 0.1 pp below fp32.",
        "",
        table,
        "",
        f"Reproduce: `{command.strip()}`.",
    ])
    write_section("quant", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
