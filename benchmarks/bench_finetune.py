"""Fine-tuning benchmarks: the original project's protocol and two standard face sets.

Protocols (each writes its own section of benchmarks/RESULTS.md and
benchmarks/results/finetune_<name>.json):

* ``utkface``: augmentation invariance, not recognition: one photo per person, 2,000 UTKFace photos, augmented copies
  of each (8 for ``simple``, 4 for ``facenet`` by default: its features are
  cached per copy); identity-disjoint 70/15/15 split; test pairs are two
  different copies of one held-out photo (same) or copies of two held-out
  people (different). ``simple`` trained from scratch (the original project
  reached about 67% pair accuracy), then ``facenet`` fine-tuned.
* ``att``: AT&T, ``facenet`` fine-tuned on 30 people (24 train + 6 validation),
  tested on the other 10.
* ``lfw``: ``facenet`` fine-tuned on the people of folds 1-9 of LFW's
  ``pairs.txt`` (a tenth of them for validation), tested on fold 10's official
  600 pairs, pretrained against fine-tuned, at the threshold chosen on the
  other folds' official pairs and at the model's own threshold.

Usage: ``python benchmarks/bench_finetune.py [utkface] [att] [lfw]`` (all by
default); ``--render`` only rewrites the RESULTS.md sections from the stored
JSON. Models and reports go to ``benchmarks/out/finetune/``. Every row gives
before and after at their own validation thresholds with McNemar's test on
the same pairs (runs stored before that was reported say "rerun").
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from results import markdown_table, write_json, write_section  # noqa: E402

FACES = ROOT / ".." / "shared" / "faces"
OUT = ROOT / "benchmarks" / "out" / "finetune"
logger = logging.getLogger("bench_finetune")


def _row(name: str, r: dict) -> dict:
    """One table row from a fine-tuning report (as stored in the JSON)."""
    head = r.get("headline")
    phases = "; ".join(f"{p['phase']}: {p['epochs_run']} ep x {p['mean_epoch_seconds']:.2f} s, cache {p['cache_seconds']:.0f} s"
                       for p in r["phases"])
    return {
        "run": name,
        "test people": r["test"]["people"],
        "test pairs": r["test"]["pairs"],
        "accuracy before": f"{r['before']['accuracy']:.4f}",
        "accuracy after": f"{r['after']['accuracy']:.4f}",
        "after at val thr": f"{r['after_at_val_threshold']:.4f}",
        "before / after at own val thr, McNemar": (
            f"{head['before_accuracy']:.4f} / {head['after_accuracy']:.4f}; {head['only_before_right']} vs "
            f"{head['only_after_right']} pairs, p = {head['p_value']:.2g}: {head['verdict']}" if head
            else "n/a (run before McNemar was reported; rerun)"),
        "same / different pairs": f"{r['test']['same_pairs']} / {r['test']['pairs'] - r['test']['same_pairs']}",
        "AUC before/after": f"{r['before']['auc']:.4f} / {r['after']['auc']:.4f}",
        "EER before/after": f"{r['before']['eer']:.4f} / {r['after']['eer']:.4f}",
        "TAR@1e-3 before/after": f"{r['before']['tar_at_far_1e-3']:.4f} / {r['after']['tar_at_far_1e-3']:.4f}",
        "epochs (time)": phases,
    }


def _run(name: str, config, **kwargs):
    from embedkit.training import finetune

    t0 = time.perf_counter()
    result = finetune(config, progress=sys.stderr.isatty(), **kwargs)
    seconds = time.perf_counter() - t0
    print(f"\n== {name} ({seconds:.0f} s)\n{result.text}", flush=True)
    return result, seconds


def bench_utkface(args) -> None:
    from embedkit.training import FinetuneConfig

    data = FACES / "utkface"
    common = dict(data=str(data), one_photo_per_person=True, val_people=0.15, test_people=0.15, seed=0,
                  eval_pairs=3000)
    runs = {
        f"simple, from scratch (64 px, no detection, {args.simple_copies} copies)": FinetuneConfig(
            out=str(OUT / "utkface_simple"), backbone="simple", detector=None, epochs=args.simple_epochs,
            augment_copies=args.simple_copies, pairs_per_epoch=args.simple_pairs, patience=3, **common),
        f"facenet, pretrained -> fine-tuned head (YuNet, {args.utk_facenet_copies} copies)": FinetuneConfig(
            out=str(OUT / "utkface_facenet"), backbone="facenet", detector="yunet", epochs=15,
            augment_copies=args.utk_facenet_copies, unfreeze=args.utk_unfreeze, unfreeze_epochs=5, **common),
    }
    raw = {}
    for name, config in runs.items():
        result, seconds = _run(f"utkface: {name}", config)
        raw[name] = {"config": config.to_dict(), "report": result.report, "seconds": seconds}
    write_json("finetune_utkface", raw)
    render_utkface(raw)


def render_utkface(raw: dict, stored: dict | None = None) -> None:
    rows = [_row(name, run["report"]) for name, run in raw.items()]
    first = next(iter(raw.values()))["report"]
    body = ("UTKFace, the original project's protocol. It measures invariance to augmentation, not recognition: "
            "2,000 photos, one per person, so a 'same' pair can only be two augmented copies of one photo (a "
            "random network already scores about 70%). People are split 70/15/15 (train / validation / test, seed 0); no test or "
            "validation person is ever seen in training. Every photo gets K augmented copies (random crop/zoom, "
            "flip, +-10 degree rotation, brightness, contrast, sometimes blur; K per run below: 8 as in the "
            "original for `simple`, fewer for `facenet` to keep caching its features affordable on 2 CPU cores). "
            "Training pairs: same = two crops (the photo or its copies) of one training photo, different = crops "
            "of two training people. Test pairs (3,000, balanced): same = two *different augmented copies* of one "
            f"held-out photo, different = copies of two different held-out people ({first['test']['people']} test "
            "people; the unaugmented photos are not used for testing). 'before' is the network before training: "
            "random initialisation for `simple`, pretrained weights for `facenet`. Accuracy is at the best "
            "threshold on the test pairs (10-fold CV); 'at val thr' is at the threshold calibrated on the "
            "validation people and saved with the model. The original project reached about 67% pair accuracy "
            "with its simple Siamese CNN.\n\n" + markdown_table(rows) + _notes(raw.values()))
    write_section("finetune_utkface", body, stored=stored)


def bench_att(args) -> None:
    from embedkit.training import FinetuneConfig

    config = FinetuneConfig(data=str(FACES / "att"), out=str(OUT / "att_facenet"), backbone="facenet", detector="yunet",
                            val_people=6, test_people=10, epochs=15, unfreeze=args.att_unfreeze,
                            unfreeze_epochs=5, learning_rate=args.att_lr, seed=0)
    result, seconds = _run("att: facenet", config)
    raw = {"config": config.to_dict(), "report": result.report, "seconds": seconds}
    write_json("finetune_att", raw)
    render_att(raw)


def render_att(raw: dict, stored: dict | None = None) -> None:
    body = ("AT&T: facenet fine-tuned on 30 people (24 train, 6 validation), tested on the other 10 "
            "(all pairs of their 100 photos, up to 3,000).\n\n" + markdown_table([_row("facenet", raw["report"])])
            + _notes([raw]))
    write_section("finetune_att", body, stored=stored)


def bench_lfw(args) -> None:
    from embedkit.data.folders import identity_folders
    from embedkit.data.splits import Split
    from embedkit.encoder import Encoder
    from embedkit.evaluation import read_lfw_pairs
    from embedkit.training import FinetuneConfig

    root = FACES / "lfw" / "lfw-deepfunneled"
    pairs = read_lfw_pairs(FACES / "lfw" / "pairs.txt")
    test_fold = 9
    fold_people: dict[int, set] = {}
    for p in pairs:
        fold_people.setdefault(p.fold, set()).update({p.path_a.split("/")[0], p.path_b.split("/")[0]})
    train_people = set().union(*(fold_people[f] for f in fold_people if f != test_fold))
    test_people = fold_people[test_fold]

    images = identity_folders(root, max_images=args.lfw_max_images)
    label_of = {name: i for i, name in enumerate(images.names)}
    rng = np.random.default_rng(0)
    train_labels = sorted(label_of[n] for n in train_people)
    val_labels = sorted(rng.choice(train_labels, size=len(train_labels) // 10, replace=False).tolist())
    split = Split(sorted(set(train_labels) - set(val_labels)), val_labels, sorted(label_of[n] for n in test_people), seed=0)

    config = FinetuneConfig(data=str(root), out=str(OUT / "lfw_facenet"), backbone="facenet", detector="yunet",
                            max_images_per_person=args.lfw_max_images, epochs=15, unfreeze=args.lfw_unfreeze,
                            unfreeze_epochs=5, learning_rate=args.lfw_lr, seed=0)
    result, seconds = _run("lfw: facenet", config, images=images, split=split)

    # The official pairs of all ten folds, with both encoders: fold 10 is the test; the other
    # folds' pairs only choose a threshold (the LFW protocol's way), never train.
    official = _official_pairs(root, pairs, test_fold, {"pretrained": Encoder.from_backbone("facenet"),
                                                        "fine-tuned": Encoder.load(OUT / "lfw_facenet")})
    official["usable"] = official.pop("_usable")
    raw = {"config": config.to_dict(), "report": result.report, "official_fold10": official, "seconds": seconds,
           "train_people": len(train_people), "max_images": args.lfw_max_images}
    write_json("finetune_lfw", raw)
    render_lfw(raw)


def render_lfw(raw: dict, stored: dict | None = None) -> None:
    official = {k: v for k, v in raw["official_fold10"].items() if k != "usable"}
    usable = raw["official_fold10"].get("usable", 600)
    train_people = raw.get("train_people", raw["report"]["split"]["train"] + raw["report"]["split"]["val"])
    max_images = raw.get("max_images", raw["config"]["max_images_per_person"])
    rows = [{"encoder": name, "pairs": usable,
             "accuracy (threshold of folds 1-9 pairs)": f"{o['accuracy_at_other_folds_threshold']:.4f} @ {o['other_folds_threshold']:.3f}",
             "accuracy (model threshold)": f"{o['accuracy_at_model_threshold']:.4f} @ {o['threshold_used']:.3f}",
             "accuracy (CV within fold 10)": f"{o['accuracy']:.4f}",
             "AUC": f"{o['auc']:.4f}", "EER": f"{o['eer']:.4f}", "TAR@1e-3": f"{o['tar_at_far_1e-3']:.4f}"}
            for name, o in official.items()]
    body = (f"LFW: facenet fine-tuned on the {train_people} people of pairs.txt folds 1-9 (a tenth held out "
            f"for validation; at most {max_images} photos each), tested on fold 10's official pairs "
            f"({usable} of 600 with a face found in both photos; the face nearest each photo's centre). Thresholds: "
            "'folds 1-9 pairs' = the accuracy-maximising threshold on the 5,400 official pairs of the other folds "
            "(the LFW protocol's choice; those pairs are of training people for the fine-tuned model, so only "
            "their threshold is used); 'model threshold' = the one saved with the model (pretrained: the "
            "backbone's calibrated threshold; fine-tuned: calibrated on the validation people); 'CV within fold "
            "10' = each tenth of the fold scored at the threshold best on the other nine tenths.\n\n" + markdown_table(rows)
            + "\n\nTest-people sampled pairs (all photos of fold-10 people):\n\n"
            + markdown_table([_row("facenet", raw["report"])]) + _notes([raw]))
    write_section("finetune_lfw", body, stored=stored)


def _notes(runs) -> str:
    """Generated remarks: a run whose training never beat the start model on validation says so."""
    lines = []
    for run in runs:
        best = run["report"].get("best_validation", {})
        start = run["report"].get("start_validation")
        if start and best and round(best.get("val_auc", 0), 5) <= round(start.get("val_auc", 0), 5):
            lines.append(f"`{run['config']['backbone']}`: no epoch beat the start model on the validation people, "
                         "so the saved model is the start model (with its threshold calibrated on them).")
    lines.append("Validation thresholds (before and after) are the ones best on the validation people's pairs with "
                 "same and different pairs weighed equally (their few photos a person allow far fewer same pairs).")
    return "\n\n" + " ".join(lines)


def _official_pairs(root: Path, pairs, test_fold: int, encoders: dict) -> dict:
    """Fold-``test_fold`` verification of each encoder, at three thresholds (see the RESULTS text)."""
    from embedkit.evaluation import best_threshold, verification_report
    from embedkit.faces import FaceExtractor
    from embedkit.training.dataset import extract_crops

    paths = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
    first = next(iter(encoders.values()))
    crops, kept = extract_crops([str(root / p) for p in paths], FaceExtractor(first.input_size, "yunet"))
    row_of = {paths[k]: i for i, k in enumerate(kept)}
    usable = [p for p in pairs if p.path_a in row_of and p.path_b in row_of]
    ia = np.array([row_of[p.path_a] for p in usable])
    ib = np.array([row_of[p.path_b] for p in usable])
    same = np.array([p.same for p in usable])
    test = np.array([p.fold == test_fold for p in usable])
    out: dict = {"_usable": int(test.sum())}
    for name, emb in _embed_all(encoders, crops).items():
        scores = np.sum(emb[ia] * emb[ib], axis=1)
        report = verification_report(scores[test], same[test], n_folds=10, seed=0)
        other_threshold, _ = best_threshold(scores[~test], same[~test])
        out[name] = {
            **report,
            "accuracy_at_model_threshold": float(np.mean((scores[test] >= encoders[name].same_threshold) == same[test])),
            "threshold_used": encoders[name].same_threshold,
            "accuracy_at_other_folds_threshold": float(np.mean((scores[test] >= other_threshold) == same[test])),
            "other_folds_threshold": other_threshold,
        }
        print(f"LFW fold {test_fold + 1} official pairs, {name}: accuracy {out[name]['accuracy_at_other_folds_threshold']:.4f} "
              f"at the folds-1-9 threshold {other_threshold:.3f}, {out[name]['accuracy_at_model_threshold']:.4f} at the "
              f"model's threshold {encoders[name].same_threshold:.3f}, {report['accuracy']:.4f} CV within the fold; "
              f"AUC {report['auc']:.4f}", flush=True)
    return out


def _embed_all(encoders: dict, crops: np.ndarray) -> dict:
    """Embeddings of ``crops`` by each encoder. Encoders whose backbone weights are the
    pretrained ones (a fine-tuned head only) share one backbone pass: a pass over 7,700
    faces takes minutes on 2 cores."""
    import tensorflow as tf

    def parts(encoder):
        layers = encoder.network.layers
        backbone = next(l for l in layers if l.name not in ("faces", "l2_normalize") and not l.name.startswith("head_dense_"))
        return backbone, [l for l in layers if l.name.startswith("head_dense_")]

    out, shared = {}, {}
    for name, encoder in encoders.items():
        backbone, head = parts(encoder)
        key = hash(tuple(np.asarray(w).tobytes() for w in backbone.get_weights()))
        if key not in shared:
            run = tf.function(lambda x, b=backbone: b(x, training=False), reduce_retracing=True)
            shared[key] = np.concatenate([run(encoder.preprocessing(crops[s:s + 64])).numpy()
                                          for s in range(0, len(crops), 64)])
        x = shared[key]
        for layer in head:
            x = layer(x).numpy()
        out[name] = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("protocols", nargs="*", default=["att", "lfw", "utkface"])
    parser.add_argument("--simple-epochs", type=int, default=6)
    parser.add_argument("--simple-copies", type=int, default=8)
    parser.add_argument("--simple-pairs", type=int, default=4000, help="pairs per epoch for simple")
    parser.add_argument("--utk-facenet-copies", type=int, default=4)
    parser.add_argument("--utk-unfreeze", type=int, default=0)
    parser.add_argument("--att-unfreeze", type=int, default=0)
    parser.add_argument("--att-lr", type=float, default=1e-4)
    parser.add_argument("--lfw-unfreeze", type=int, default=0)
    parser.add_argument("--lfw-lr", type=float, default=1e-4)
    parser.add_argument("--lfw-max-images", type=int, default=5)
    parser.add_argument("--render", action="store_true",
                        help="only rewrite the RESULTS.md sections from benchmarks/results/finetune_*.json")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("tensorflow", "absl", "h5py", "embedkit.data.pairs"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for protocol in args.protocols:
        if args.render:
            import json

            from results import RESULTS_JSON_DIR

            stored = json.loads((RESULTS_JSON_DIR / f"finetune_{protocol}.json").read_text())
            {"utkface": render_utkface, "att": render_att, "lfw": render_lfw}[protocol](stored["results"], stored)
        else:
            {"utkface": bench_utkface, "att": bench_att, "lfw": bench_lfw}[protocol](args)


if __name__ == "__main__":
    main()
