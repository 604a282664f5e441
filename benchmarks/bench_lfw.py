"""LFW verification accuracy of embedkit, on all 6,000 pairs of ``pairs.txt``.

The LFW protocol: 10 folds of 600 pairs (300 same, 300 different, no person in
two folds); each fold is scored at the accuracy-maximising threshold of the
other nine, and the mean and standard deviation over folds are reported,
with ROC AUC, EER, TAR at FAR 1e-2 / 1e-3 and the best single threshold over
all pairs (the calibrated threshold of the pretrained facenet backbone,
``FACENET_THRESHOLD`` in ``embedkit/backbones/facenet.py``, comes from the
``yunet`` row of this benchmark).

Each configuration is a face-finding setting: ``yunet`` / ``mtcnn``
(detect and align) or ``cc0.7`` (no detection, keep the central 70% of the
deep-funneled 250x250 photo).

    python benchmarks/bench_lfw.py                        # pretrained facenet
    python benchmarks/bench_lfw.py --configs yunet,cc0.4,cc0.5
    python benchmarks/bench_lfw.py --model models/ft      # a fine-tuned model
    python benchmarks/bench_lfw.py --folds 1 --configs yunet   # quick check
    python benchmarks/bench_lfw.py --configs mtcnn --append    # add a row to the last run's
    python benchmarks/bench_lfw.py --runtime litert --configs yunet   # the fast runtime (section lfw-litert)
    python benchmarks/bench_lfw.py --backbone sface --runtime auto --configs yunet   # sface (OpenCV)

Writes section ``lfw`` (``lfw-<model folder name>`` with ``--model``) of
``benchmarks/RESULTS.md`` and ``benchmarks/results/<same>.json``, after
every configuration, so a long run leaves partial results behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import markdown_table, write_json, write_section  # noqa: E402

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
DEFAULT_PAIRS = FACES / "lfw" / "pairs.txt"
DEFAULT_IMAGES = FACES / "lfw" / "lfw-deepfunneled"


def lfw_pair_arrays(pairs_file: Path, images: Path, first_folds: int | None = None):
    """``pairs.txt`` as arrays: paths of each pair's two photos, the distinct photos (in pair order),
    same/different and fold per pair; ``first_folds`` keeps only the first K folds (quick checks)."""
    import numpy as np

    from embedkit.evaluation.pairs import read_lfw_pairs

    pairs = read_lfw_pairs(pairs_file)
    if first_folds is not None:
        kept = sorted({p.fold for p in pairs})[:first_folds]
        pairs = [p for p in pairs if p.fold in kept]
    paths_a = [str(images / p.path_a) for p in pairs]
    paths_b = [str(images / p.path_b) for p in pairs]
    photos = list(dict.fromkeys(p for pair in zip(paths_a, paths_b) for p in pair))
    same = np.array([p.same for p in pairs], dtype=bool)
    folds = np.array([p.fold for p in pairs])
    return paths_a, paths_b, photos, same, folds


def parse_config(name: str) -> tuple[str | None, float]:
    """``yunet`` -> ("yunet", 1.0); ``cc0.7`` -> (None, 0.7)."""
    if name.startswith("cc"):
        return None, float(name[2:])
    return name, 1.0


def run_config(encoder, name: str, pairs, images: Path, folds: int | None, flip: bool) -> dict:
    from embedkit.evaluation.evaluate import evaluate_pairs
    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline

    detector, fraction = parse_config(name)
    pipeline = FacePipeline(encoder, FaceExtractor.for_encoder(encoder, detector, fraction), flip=flip)
    started = time.perf_counter()
    report = evaluate_pairs(pipeline, pairs, images, folds=folds)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["config"] = name
    report["detector"] = detector
    report["center_crop"] = fraction
    report["flip"] = flip
    return report


def row(report: dict) -> dict:
    return {
        "faces": (f"{report['detector']} (detect + align)" if report["detector"]
                  else f"no detection, center crop {report['center_crop']:g}"),
        "10-fold accuracy": f"{100 * report['accuracy']:.2f}% ± {100 * report['accuracy_std']:.2f}",
        "AUC": f"{report['auc']:.4f}",
        "EER": f"{100 * report['eer']:.2f}%",
        "TAR@FAR=1e-2": f"{100 * report['tar_at_far_1e-2']:.2f}%",
        "TAR@FAR=1e-3": f"{100 * report['tar_at_far_1e-3']:.2f}%",
        "best threshold (all pairs)": f"{report['threshold']:.3f}",
        "photos without a face": f"{report['n_missing']} of {report['n_images']}",
        "images/s": f"{report['images_per_second']:.1f}",
    }


def markdown(model_label: str, reports: list[dict], n_pairs: int) -> str:
    commands = list(dict.fromkeys(r.get("command", "") for r in reports))
    lines = [
        f"### LFW verification, {model_label}",
        "",
        f"{n_pairs} pairs of `lfw/pairs.txt` (LFW deep-funneled photos), 10-fold protocol: each fold scored at "
        "the threshold that is best on the other nine; mean ± standard deviation over folds. Pairs with a photo "
        "in which no face was found count as 'different' verdicts. AUC, EER and TAR@FAR over all pairs; "
        "images/s is the whole evaluation (decode, detect/crop, embed) on this machine, shared with other jobs.",
        "",
        markdown_table([row(r) for r in reports]),
        "",
        "Commands: " + "; ".join(f"`{c}`" for c in commands),
    ]
    return "\n".join(lines)


def previous_reports(name: str, configs: str) -> list[dict]:
    """Reports of an earlier run's configurations that this run does not repeat."""
    import json

    from benchmarks.results import RESULTS_JSON_DIR

    path = RESULTS_JSON_DIR / f"{name}.json"
    if not path.is_file():
        return []
    rerun = {c.strip() for c in configs.split(",")}
    earlier = json.loads(path.read_text())["results"]
    for report in earlier["configs"]:
        report.setdefault("command", earlier.get("command", ""))
    return [r for r in earlier["configs"] if r["config"] not in rerun]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--backbone", default="facenet")
    parser.add_argument("--model", type=Path, default=None, help="A fine-tuned model folder.")
    parser.add_argument("--configs", default="yunet,mtcnn,cc0.5,cc0.6,cc0.7",
                        help="Comma-separated: yunet, mtcnn, ccF (no detection, central fraction F).")
    parser.add_argument("--folds", type=int, default=None, help="Only the first K folds (quick check).")
    parser.add_argument("--flip", action="store_true", help="Also embed mirror images.")
    parser.add_argument("--runtime", default="tensorflow", choices=("tensorflow", "litert", "auto"),
                        help="Inference back-end (embedkit.runtime); sface always runs on OpenCV.")
    parser.add_argument("--name", default=None, help="Result section name (default lfw / lfw-<model>).")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    parser.add_argument("--append", action="store_true",
                        help="Keep the other configurations of an earlier run of the same section.")
    args = parser.parse_args(argv)

    from embedkit.evaluation.pairs import read_lfw_pairs
    from embedkit.runtime import load_encoder

    pairs = read_lfw_pairs(args.pairs)
    encoder = load_encoder(args.model, None if args.model else args.backbone, job="bulk", backend=args.runtime)
    if hasattr(encoder, "for_job"):
        # The back-end a bulk job of all the pairs' photos runs on, so the label names what embedded them.
        encoder = encoder.for_job(len({p for pair in pairs for p in (pair.path_a, pair.path_b)}))
    backend = getattr(encoder, "backend", "tensorflow")
    model_label = (f"fine-tuned model `{args.model.name}` ({encoder.backbone})" if args.model
                   else f"`{args.backbone}` pretrained") + f", {backend} runtime"
    name = args.name or (f"lfw-{args.model.name}" if args.model else "lfw")
    if args.backbone != "facenet" and not args.model:
        name = args.name or f"{name}-{args.backbone}"
    if args.runtime != "tensorflow":
        name = args.name or f"{name}-{backend}"
    if args.flip:
        model_label += ", with flip"
        name = args.name or f"{name}-flip"
    n_pairs = len(pairs) if args.folds is None else sum(p.fold < args.folds for p in pairs)
    command = "python benchmarks/bench_lfw.py " + " ".join(argv if argv is not None else sys.argv[1:])

    reports = previous_reports(name, args.configs) if args.append else []
    for config in [c.strip() for c in args.configs.split(",") if c.strip()]:
        print(f"[{config}] embedding ...", flush=True)
        report = run_config(encoder, config, pairs, args.images, args.folds, args.flip)
        report["command"] = command
        reports.append(report)
        print(f"[{config}] " + "  ".join(f"{k}={v}" for k, v in row(report).items()), flush=True)
        if not args.no_write:
            write_json(name, {"model": model_label, "model_id": encoder.model_id, "n_pairs": n_pairs,
                              "command": command, "configs": reports})
            write_section(name, markdown(model_label, reports, n_pairs))
    best = max(reports, key=lambda r: r["accuracy"])
    print(f"best: {best['config']} {100 * best['accuracy']:.2f}% ± {100 * best['accuracy_std']:.2f}; "
          f"threshold {best['threshold']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
