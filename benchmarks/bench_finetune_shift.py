"""Fine-tuning under domain shift: does fine-tuning win back what a shift costs the pretrained model?

Protocol (LFW, identity-disjoint, official pairs):

* test: fold 10's official 600 pairs of ``pairs.txt`` (300 same, 300 different);
  no test person is seen in training or validation (LFW's folds share no people);
* train / validation: the people of folds 1-9 with at least two photos (at most
  ``--max-images`` each; ``--train-images`` gives training people more, while
  validation people keep theirs, so every run validates on the same pairs);
  a tenth of them, drawn with seed 0, validate (model
  selection and the saved threshold);
* faces: YuNet detection + alignment on the original photo, the face nearest
  the photo's centre (the rule of ``compare``, ``evaluate`` and ``finetune``);
  the shift (``embedkit.data.shifts``) is then applied to every aligned crop,
  train, validation and test alike (training faces get other random draws);
* before = pretrained facenet, after = the fine-tuned model; each is scored on
  the test pairs at the threshold that is best on ITS validation pairs (never
  a threshold chosen on test pairs). ``clean`` = pretrained facenet on the
  unshifted faces, likewise. McNemar's exact test pairs before and after on the
  same 600 test pairs.

Aligned crops and backbone features are cached under ``benchmarks/.cache/``
(git-ignored), so a rerun only trains.

    python benchmarks/bench_finetune_shift.py                 # both shifts, both losses
    python benchmarks/bench_finetune_shift.py --shifts lowres --losses triplet

Writes ``benchmarks/results/finetune_shift.json`` and the ``finetune_shift``
section of ``benchmarks/RESULTS.md``.

``--ten-fold`` runs one setting (one shift, one loss, the training options)
on all ten LFW folds: fold k's official pairs test a model fine-tuned and
validated on the other nine folds' people, with the same rules. One set of
aligned crops covers every fold (only each photo's part changes), so the
frozen features are computed once. Each fold is stored as it finishes and a
rerun skips the stored ones; writes ``finetune_shift_10fold`` (the setting
fold 10's validation chose for ``lowres``: ``--losses triplet --unfreeze 3
--unfreeze-epochs 5 --unfreeze-lr 3e-5 --pairs 4000 --epochs 0``):

    python benchmarks/bench_finetune_shift.py --ten-fold --shifts lowres --losses triplet ...
"""

from __future__ import annotations

import argparse
import hashlib
import re
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import markdown_table, write_json, write_section  # noqa: E402

FACES = ROOT / ".." / "shared" / "faces"
LFW_IMAGES = FACES / "lfw" / "lfw-deepfunneled"
LFW_PAIRS = FACES / "lfw" / "pairs.txt"
CACHE = ROOT / "benchmarks" / ".cache" / "finetune_shift"
OUT = ROOT / "benchmarks" / "out" / "finetune_shift"
TEST_FOLD = 9  # fold 10
UNUSED = "unused"  # a FaceSet part the trainer ignores (only "train", "val" and "test" are read)
logger = logging.getLogger("bench_finetune_shift")


def training_photos(people, max_images: int) -> dict[str, list[str]]:
    """Each person's first ``max_images`` photos (by name), for the people with at least two photos."""
    out = {}
    for person in people:
        photos = sorted(f for f in os.listdir(LFW_IMAGES / person) if f.endswith(".jpg"))
        if len(photos) >= 2:
            out[person] = [f"{person}/{f}" for f in photos[:max_images]]
    return out


def pair_paths(pairs, fold: int) -> list[str]:
    """The photos of one fold's official pairs (``fold`` counted from 0)."""
    return sorted({p for pair in pairs if pair.fold == fold for p in (pair.path_a, pair.path_b)})


def _person(path: str) -> str:
    return path.split("/")[0]


def lfw_crops(max_images: int, size: int = 160, train_images: int | None = None) -> dict:
    """Aligned crops of the benchmark's photos, cached: ``{paths, crops, kept, pairs, val_images}``.

    ``train_images``: photos per training person (default ``max_images``; 0: every photo); validation
    people keep their first ``max_images`` (:func:`face_inputs`), so every run validates on the same pairs."""
    from embedkit.evaluation.pairs import read_lfw_pairs

    pairs = read_lfw_pairs(LFW_PAIRS)
    test_paths = pair_paths(pairs, TEST_FOLD)
    train_people = sorted({_person(p) for pair in pairs if pair.fold != TEST_FOLD for p in (pair.path_a, pair.path_b)})
    most = _most_images(max_images, train_images)
    train_paths = [p for photos in training_photos(train_people, most).values() for p in photos]
    paths = train_paths + test_paths
    crops, kept = _aligned(paths, size, reuse=None if most == max_images else lambda: lfw_crops(max_images, size))
    return {"paths": paths, "crops": crops, "kept": kept, "pairs": pairs, "val_images": max_images}


def _most_images(max_images: int, train_images: int | None) -> int:
    """Photos per person to align: the larger of the validation cap and ``train_images`` (0: every photo)."""
    if train_images is None:
        return max_images
    return 10**6 if train_images == 0 else max(train_images, max_images)


def all_folds_crops(max_images: int, size: int = 160, train_images: int | None = None) -> dict:
    """Aligned crops of every photo any of the ten folds needs (every photo of ``pairs.txt`` and every
    person's training photos), cached; the photos :func:`lfw_crops` already aligned are taken from its
    cache. ``train_photos``: :func:`training_photos` of everyone in ``pairs.txt`` (``train_images`` each,
    as for :func:`lfw_crops`; ``val_images`` of them when the person validates)."""
    from embedkit.evaluation.pairs import read_lfw_pairs

    pairs = read_lfw_pairs(LFW_PAIRS)
    people = sorted({_person(p) for pair in pairs for p in (pair.path_a, pair.path_b)})
    most = _most_images(max_images, train_images)
    train_photos = training_photos(people, most)
    paths = sorted({p for pair in pairs for p in (pair.path_a, pair.path_b)}
                   | {p for photos in train_photos.values() for p in photos})
    if most == max_images:
        reuse = lambda: lfw_crops(max_images, size)  # noqa: E731
    else:
        reuse = lambda: all_folds_crops(max_images, size)  # noqa: E731
    crops, kept = _aligned(paths, size, reuse=reuse)
    return {"paths": paths, "crops": crops, "kept": kept, "pairs": pairs, "train_photos": train_photos,
            "val_images": max_images}


def _aligned(paths: list[str], size: int, reuse=None) -> tuple[np.ndarray, np.ndarray]:
    """``(crops, kept)`` of ``paths`` (YuNet, the face nearest the centre), cached by the path list;
    ``reuse``: a function giving another cached set whose photos need not be aligned again."""
    key = hashlib.sha256(("\n".join(paths) + f"|{size}|yunet").encode()).hexdigest()[:16]
    cache = CACHE / f"crops_{key}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return data["crops"], data["kept"]
    from embedkit.faces import FaceExtractor
    from embedkit.training.dataset import extract_crops

    known, tried = {}, set()
    if reuse is not None:
        other = reuse()
        tried = set(other["paths"])
        known = {other["paths"][k]: other["crops"][i] for i, k in enumerate(other["kept"])}
    todo = [p for p in paths if p not in tried]
    t0 = time.perf_counter()
    new_crops, new_kept = extract_crops([str(LFW_IMAGES / p) for p in todo], FaceExtractor(size, "yunet"),
                                        progress=True)
    logger.info("aligned %d of %d photos in %.0f s", len(new_kept), len(todo), time.perf_counter() - t0)
    known.update({todo[k]: new_crops[i] for i, k in enumerate(new_kept)})
    kept = np.array([i for i, p in enumerate(paths) if p in known], dtype=np.int64)
    crops = np.zeros((len(kept), size, size, 3), dtype=np.uint8)
    for row, i in enumerate(kept):
        crops[row] = known[paths[i]]
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, crops=crops, kept=kept)
    return crops, kept


def face_inputs(data: dict, val_fraction: float = 0.1):
    """``(images, split, faces, paths)`` for :func:`embedkit.training.finetune`: folds 1-9 people train
    and validate, fold 10 people test; clean crops (the trainer applies ``FinetuneConfig.shift``)."""
    from embedkit.data.folders import LabelledImages
    from embedkit.data.splits import Split
    from embedkit.training.dataset import FaceSet

    kept = data["kept"]
    paths = [data["paths"][k] for k in kept]
    names = sorted({p.split("/")[0] for p in paths})
    label_of = {name: i for i, name in enumerate(names)}
    labels = np.array([label_of[p.split("/")[0]] for p in paths], dtype=np.int64)
    test_names = {p for pair in data["pairs"] if pair.fold == TEST_FOLD for p in (pair.path_a.split("/")[0],
                                                                                   pair.path_b.split("/")[0])}
    test = sorted(label_of[n] for n in test_names if n in label_of)
    rest = sorted(set(label_of.values()) - set(test))
    rng = np.random.default_rng(0)
    val = sorted(rng.choice(rest, size=int(round(val_fraction * len(rest))), replace=False).tolist())
    split = Split(sorted(set(rest) - set(val)), val, test, seed=0)
    images = LabelledImages([str(LFW_IMAGES / p) for p in paths], labels, names, str(LFW_IMAGES))
    part = split.part_of(labels).astype(str)
    part[(part == "val") & (_photo_rank(paths) >= data.get("val_images", 10**6))] = UNUSED
    faces = FaceSet(data["crops"], labels, part, np.arange(len(paths)), np.zeros(len(paths), dtype=bool))
    return images, split, faces, paths


def _photo_rank(paths: list[str]) -> np.ndarray:
    """Each path's place among its person's photos, by name (0 = the person's first photo)."""
    seen: dict[str, int] = {}
    rank = {}
    for p in sorted(paths):
        rank[p] = seen.get(_person(p), 0)
        seen[_person(p)] = rank[p] + 1
    return np.array([rank[p] for p in paths], dtype=np.int64)


def official_test_pairs(data: dict, paths: list[str], rows: np.ndarray, fold: int = TEST_FOLD):
    """A fold's official pairs (fold 10 unless told) as indices into ``rows`` (the test rows of the face
    set); pairs with a photo without a face are counted as wrong for every encoder (none in this set)."""
    position = {paths[r]: k for k, r in enumerate(rows)}
    pairs = [p for p in data["pairs"] if p.fold == fold]
    usable = [p for p in pairs if p.path_a in position and p.path_b in position]
    ia = np.array([position[p.path_a] for p in usable])
    ib = np.array([position[p.path_b] for p in usable])
    same = np.array([p.same for p in usable])
    return ia, ib, same, len(pairs) - len(usable)


def _scores(emb, ia, ib):
    return np.sum(emb[ia] * emb[ib], axis=1)


def clean_reference(data: dict, config) -> dict:
    """Pretrained facenet on the unshifted faces: test embeddings and the validation threshold (cached)."""
    from embedkit.training.trainer import split_held_out
    from embedkit.encoder import Encoder
    from embedkit.evaluation import best_threshold

    _, split, faces, paths = face_inputs(data)
    val, test = faces.indices("val"), faces.indices("test")
    cache = CACHE / f"clean_{hashlib.sha256(str((len(paths), val.tolist(), test.tolist())).encode()).hexdigest()[:16]}.npz"
    if cache.is_file():
        stored = np.load(cache)
        val_emb, test_emb = stored["val"], stored["test"]
    else:
        encoder = Encoder.from_backbone("facenet")
        val_emb, test_emb = encoder.encode(faces.crops[val]), encoder.encode(faces.crops[test])
        np.savez(cache, val=val_emb, test=test_emb)
    ia, ib, same = split_held_out(config, faces).val_pairs  # the trainer's validation pairs
    threshold, _ = best_threshold(_scores(val_emb, ia, ib), same, balanced=True)
    return {"test": test_emb, "threshold": threshold}


def verdicts(emb, threshold, ia, ib, same) -> tuple[np.ndarray, dict]:
    from embedkit.evaluation import verification_report

    scores = _scores(emb, ia, ib)
    correct = (scores >= threshold) == same
    report = verification_report(scores, same)
    return correct, {"accuracy": float(correct.mean()), "threshold": float(threshold),
                     "tar_at_far_1e-3": report["tar_at_far_1e-3"], "auc": report["auc"]}


def variant_name(args) -> str:
    parts = [f"head {args.epochs} ep @ {args.lr:g}"] if args.epochs else []
    if args.unfreeze:
        parts.append(f"top {args.unfreeze} blocks {args.unfreeze_epochs} ep @ {args.unfreeze_lr:g}")
    name = " + ".join(parts) + f", {args.pairs} pairs/ep"
    if args.margin is not None:
        name += f", margin {args.margin:g}"
    if args.hard_negatives:
        name += f", {args.hard_negatives:g} hard negatives"
    if args.train_images is not None and args.train_images != args.max_images:
        name += ", every photo of each training person" if args.train_images == 0 else \
            f", {args.train_images} photos per training person"
    return name


def sampled_test(report: dict) -> dict:
    """The trainer's own test figures: 3,000 pairs sampled from all photos of the test people."""
    head = report["headline"]
    return {"n_pairs": report["test"]["pairs"], "n_same": report["test"]["same_pairs"],
            "before_accuracy": head["before_accuracy"], "after_accuracy": head["after_accuracy"],
            "mcnemar": {k: head[k] for k in ("only_before_right", "only_after_right", "p_value", "verdict")},
            "start_model_kept": round(report["best_validation"]["val_auc"], 5)
            <= round(report["start_validation"]["val_auc"], 5)}


def finetune_config(args, shift: str, loss: str, out: Path):
    """The trainer's settings of a run of this benchmark (the training options of the command line)."""
    from embedkit.training import FinetuneConfig

    return FinetuneConfig(data=str(LFW_IMAGES), out=str(out), backbone="facenet",
                          epochs=args.epochs, unfreeze=args.unfreeze, unfreeze_epochs=args.unfreeze_epochs,
                          learning_rate=args.lr, unfreeze_learning_rate=args.unfreeze_lr, loss=loss, shift=shift,
                          head_units=(128,),
                          pairs_per_epoch=args.pairs, patience=args.patience, eval_pairs=3000,
                          margin=args.margin, hard_negatives=args.hard_negatives,
                          feature_cache=str(CACHE / "features"), seed=0)


def run_one(data: dict, shift: str, loss: str, args, clean: dict) -> dict:
    from embedkit.training import finetune

    images, split, faces, paths = face_inputs(data)
    out = OUT / f"{shift}_{loss}_{re.sub(r'[^A-Za-z0-9.]+', '_', variant_name(args))}"
    config = finetune_config(args, shift, loss, out)
    t0 = time.perf_counter()
    result = finetune(config, images=images, split=split, faces=faces, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    print(f"\n== {shift} / {loss} ({seconds:.0f} s)\n{result.text}", flush=True)
    head = result.report["headline"]
    row = {"shift": shift, "loss": loss, "training": variant_name(args)}
    row.update(official_scores(data, paths, result.test_indices, clean,
                               (result.test_embeddings["before"], head["before_threshold"]),
                               (result.test_embeddings["after"], head["after_threshold"])))
    row.update({
        "people": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "crops": faces.counts(),
        "best_validation": result.report["best_validation"],
        "start_validation": result.report["start_validation"],
        "sampled_test": sampled_test(result.report),
        "phases": result.report["phases"], "seconds": seconds, "config": config.to_dict(),
    })
    _print_row(row)
    return row


def official_scores(data: dict, paths: list[str], test_rows, clean: dict, before: tuple, after: tuple) -> dict:
    """Clean, before and after on fold 10's official pairs; ``before``/``after`` = (test embeddings, threshold)."""
    from embedkit.evaluation.metrics import mcnemar, small_sample_warnings

    ia, ib, same, missing = official_test_pairs(data, paths, test_rows)
    clean_correct, clean_m = verdicts(clean["test"], clean["threshold"], ia, ib, same)
    before_correct, before_m = verdicts(*before, ia, ib, same)
    after_correct, after_m = verdicts(*after, ia, ib, same)
    test = mcnemar(before_correct, after_correct)
    cost = clean_m["accuracy"] - before_m["accuracy"]
    return {
        "clean_accuracy": clean_m["accuracy"], "before_accuracy": before_m["accuracy"],
        "after_accuracy": after_m["accuracy"],
        "before_tar_1e-3": before_m["tar_at_far_1e-3"], "after_tar_1e-3": after_m["tar_at_far_1e-3"],
        "clean_tar_1e-3": clean_m["tar_at_far_1e-3"],
        "before_auc": before_m["auc"], "after_auc": after_m["auc"], "clean_auc": clean_m["auc"],
        "thresholds": {"clean": clean_m["threshold"], "before": before_m["threshold"], "after": after_m["threshold"]},
        "recovered_fraction": (after_m["accuracy"] - before_m["accuracy"]) / cost if cost > 0 else None,
        "n_test_pairs": int(same.size), "n_same": int(same.sum()), "n_different": int((~same).sum()),
        "pairs_without_face": missing,
        "p_value": test["p_value"], "mcnemar": test,
        "warnings": small_sample_warnings(int(same.sum()), int((~same).sum())),
    }


def _more_training_crops(results: dict) -> str:
    """How many training crops the runs with every photo of each training person had (or "")."""
    counts = sorted({r["crops"]["train"]["crops"] for r in results["runs"].values()
                     if "every photo" in r["training"] and "crops" in r})
    if not counts:
        return ""
    return f" ({', '.join(map(str, counts))} train in the runs with every photo of each training person)"


def _print_row(row: dict) -> None:
    print(f"{row['shift']}/{row['loss']} ({row['training']}): clean {row['clean_accuracy']:.4f}, before "
          f"{row['before_accuracy']:.4f}, after {row['after_accuracy']:.4f} (McNemar p={row['p_value']:.3g}, "
          f"{row['mcnemar']['verdict']}); TAR@1e-3 {row['before_tar_1e-3']:.3f} -> {row['after_tar_1e-3']:.3f}",
          flush=True)


def rescore(data: dict) -> None:
    """Score every stored run's saved model again under the current threshold rule, without training.

    For each run: the shifted validation and test faces (the trainer's own draws,
    :func:`~embedkit.training.dataset.shifted_face_set`), the pretrained and the saved fine-tuned encoder's
    embeddings, each one's threshold from the trainer's validation pairs, then the official and the
    sampled test pairs. A run whose model folder is gone is
    left as stored (and says so)."""
    from embedkit.training.trainer import split_held_out
    from embedkit.encoder import Encoder
    from embedkit.training import FinetuneConfig
    from embedkit.training.dataset import shifted_face_set

    results = _load_previous()
    clean = clean_reference(data, FinetuneConfig(data="lfw", out="unused", seed=0, eval_pairs=3000))
    _, split, clean_faces, paths = face_inputs(data)
    pretrained = Encoder.from_backbone("facenet")
    by_shift = {}
    for key, row in results["runs"].items():
        out = Path(row["config"]["out"])
        if not (out / "embedkit_model.json").is_file():
            logger.warning("%s: model folder %s is gone; left as stored", key, out)
            row["rescored"] = False
            continue
        config = FinetuneConfig(data="lfw", out="unused", seed=row["config"]["seed"], shift=row["shift"],
                                eval_pairs=row["config"]["eval_pairs"])
        if row["shift"] not in by_shift:
            faces = shifted_face_set(clean_faces, config.shift, config.seed)
            rows = split_held_out(config, faces)  # the trainer's rows and pairs
            held = {"val": rows.val, "test": rows.test, "faces": faces,
                    "val_pairs": rows.val_pairs, "test_pairs": rows.test_pairs}
            held["before"] = _embed(pretrained, held)
            by_shift[row["shift"]] = held
        held = by_shift[row["shift"]]
        after = _embed(Encoder.load(out), held)
        row.update(official_scores(data, paths, held["test"], clean, held["before"]["official"],
                                   after["official"]))
        row["best_validation"].update(after["validation"])
        row["start_validation"].update(held["before"]["validation"])
        row["sampled_test"].update(_sampled_again(held["test_pairs"], held["before"], after))
        row["rescored"] = True
        _print_row(row)
    choose(results)
    results["commands"] = list(dict.fromkeys(results["commands"] + ["python benchmarks/bench_finetune_shift.py --rescore"]))
    write_json("finetune_shift", results)
    write_section("finetune_shift", markdown(results))
    logger.info("rescored %d runs", sum(bool(r.get("rescored")) for r in results["runs"].values()))


def _embed(encoder, held: dict) -> dict:
    """An encoder's validation figures (threshold by the trainer's rule) and test embeddings."""
    from embedkit.evaluation import best_threshold, verification_report

    faces = held["faces"]
    val_emb, test_emb = encoder.encode(faces.crops[held["val"]]), encoder.encode(faces.crops[held["test"]])
    ia, ib, same = held["val_pairs"]
    scores = _scores(val_emb, ia, ib)
    threshold, accuracy = best_threshold(scores, same, balanced=True)
    return {"test": test_emb, "official": (test_emb, threshold),
            "validation": {"val_auc": verification_report(scores, same)["auc"], "val_accuracy": accuracy,
                           "val_threshold": threshold}}


def _sampled_again(test_pairs, before: dict, after: dict) -> dict:
    """The trainer's sampled test comparison again: 3,000 pairs of all the test people's photos."""
    from embedkit.evaluation.metrics import mcnemar

    ia, ib, same = test_pairs
    right = [(_scores(e["test"], ia, ib) >= e["official"][1]) == same for e in (before, after)]
    test = mcnemar(*right)
    return {"n_pairs": int(same.size), "n_same": int(same.sum()), "before_accuracy": float(right[0].mean()),
            "after_accuracy": float(right[1].mean()),
            "mcnemar": {k: test[k] for k in ("only_before_right", "only_after_right", "p_value", "verdict")}}


def _sampled(r: dict) -> str:
    t = r.get("sampled_test")
    if not t:
        return "n/a"
    m = t["mcnemar"]
    kept = "; start model kept" if t["start_model_kept"] else ""
    return (f"{_pct(t['before_accuracy'])} -> {_pct(t['after_accuracy'])} ({t['n_same']} same / "
            f"{t['n_pairs'] - t['n_same']} different), {m['only_before_right']} / {m['only_after_right']}, "
            f"p = {m['p_value']:.2g}: {m['verdict']}{kept}")


def _start_auc(r: dict) -> str:
    start = r.get("start_validation")
    return "n/a" if start is None else f"{start['val_auc']:.4f}"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _val_auc(row: dict) -> float:
    return row["best_validation"]["val_auc"]


def choose(results: dict) -> None:
    """Per shift and loss, the run with the best validation AUC, and per shift the best of those
    (chosen on validation, never on test)."""
    results["shifts"] = {}
    for row in results["runs"].values():
        by_loss = results["shifts"].setdefault(row["shift"], {})
        current = by_loss.get(row["loss"])
        if current is None or _val_auc(row) > _val_auc(current):
            by_loss[row["loss"]] = row
    results["chosen"] = {shift: max(by_loss.values(), key=_val_auc)["loss"]
                         for shift, by_loss in results["shifts"].items()}


def _same_budget(runs: list[dict]) -> list[dict]:
    """Table rows: per shift and training setting run with two or more losses, each loss's figures."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["shift"], r["training"]), []).append(r)
    rows = []
    for (shift, training), group in sorted(groups.items()):
        if len({r["loss"] for r in group}) < 2:
            continue
        for r in sorted(group, key=lambda r: -_val_auc(r)):
            m = r["mcnemar"]
            rows.append({"shift": shift, "training": training, "loss": r["loss"],
                         "val AUC (best)": f"{_val_auc(r):.4f}", "before": _pct(r["before_accuracy"]),
                         "after": _pct(r["after_accuracy"]), "recovered": _pct(r["recovered_fraction"]),
                         "McNemar: only before / only after right, p":
                             f"{m['only_before_right']} / {m['only_after_right']}, p = {m['p_value']:.2g}: {m['verdict']}",
                         "TAR@1e-3 after": _pct(r["after_tar_1e-3"])})
    return rows


def _verdicts(results: dict) -> list[str]:
    """Per shift: does the run chosen on validation meet the target, and how far test accuracy ranges over
    the runs not chosen (picking among those by test pairs would be optimistic)."""
    lines = []
    for shift, loss in results["chosen"].items():
        r = results["shifts"][shift][loss]
        others = [o for o in results["runs"].values() if o["shift"] == shift and o is not r]
        met = r["recovered_fraction"] is not None and r["recovered_fraction"] >= 0.5 and r["p_value"] < 0.05
        line = (f"- {shift}: chosen on validation: {loss}, {r['training']}: {_pct(r['before_accuracy'])} -> "
                f"{_pct(r['after_accuracy'])}, recovered {_pct(r['recovered_fraction'])} "
                f"(p = {r['p_value']:.2g}); target (>= 50% recovered, significant) {'met' if met else 'not met'}.")
        if others:
            low, high = min(o["after_accuracy"] for o in others), max(o["after_accuracy"] for o in others)
            line += (f" The {len(others)} other runs score {_pct(low)} to {_pct(high)} on the same test pairs; "
                     "picking the best of them by these test pairs would be optimistic, so none is the headline.")
        lines.append(line)
    return lines


def markdown(results: dict) -> str:
    lines = [PROTOCOL_TEXT, ""]
    rows = []
    for shift, by_loss in results["shifts"].items():
        for loss, r in by_loss.items():
            m = r["mcnemar"]
            chosen = " (chosen)" if results["chosen"][shift] == loss else ""
            rows.append({"shift": shift, "loss": loss + chosen,
                         "training (best validation AUC of those tried)": r["training"],
                         "val AUC": f"{_val_auc(r):.4f}",
                         "clean (pretrained)": _pct(r["clean_accuracy"]),
                         "before (pretrained)": _pct(r["before_accuracy"]), "after (fine-tuned)": _pct(r["after_accuracy"]),
                         "recovered": _pct(r["recovered_fraction"]),
                         "McNemar: only before / only after right, p":
                             f"{m['only_before_right']} / {m['only_after_right']}, p = {m['p_value']:.2g}: {m['verdict']}",
                         "TAR@1e-3 before / after": f"{_pct(r['before_tar_1e-3'])} / {_pct(r['after_tar_1e-3'])}",
                         "AUC before / after": f"{r['before_auc']:.4f} / {r['after_auc']:.4f}",
                         "test pairs (same / different)": f"{r['n_test_pairs']} ({r['n_same']} / {r['n_different']})",
                         "3,000 sampled test-people pairs: before -> after, p": _sampled(r)})
    lines.append(markdown_table(rows))
    if rows:
        first = next(iter(next(iter(results["shifts"].values())).values()))
        lines += ["", f"People: {first['people']['train']} train, {first['people']['val']} validation, "
                      f"{first['people']['test']} test; crops: {first['crops']['train']['crops']} train, "
                      f"{first['crops']['val']['crops']} validation, {first['crops']['test']['crops']} test"
                      + _more_training_crops(results) + ". "
                      "'recovered' = (after - before) / (clean - before); the target is at least 50%. "
                      + " ".join(f"Warning: {w}." for w in first["warnings"])]
        lines += ["", *_verdicts(results)]
    runs = list(results["runs"].values())
    same_budget = _same_budget(runs)
    if same_budget:
        lines += ["", "Losses compared at the same budget (same shift, data, blocks, epochs, learning rate and pairs "
                      "per epoch; every setting run with two or more losses):", "", markdown_table(same_budget)]
    if runs:
        lines += ["", "Every run (same protocol; the table above shows, per shift and loss, the run whose best "
                      "validation AUC is highest):", "",
                  markdown_table([{"shift": r["shift"], "loss": r["loss"], "training": r["training"],
                                   "val AUC (start / best)": f"{_start_auc(r)} / {_val_auc(r):.4f}",
                                   "val accuracy (best)": _pct(r["best_validation"]["val_accuracy"]),
                                   "before": _pct(r["before_accuracy"]), "after": _pct(r["after_accuracy"]),
                                   "p": f"{r['p_value']:.2g}", "sampled test pairs": _sampled(r),
                                   "minutes": f"{r['seconds'] / 60:.0f}"} for r in runs])]
    rescored = sum(bool(r.get("rescored")) for r in runs)
    if rescored:
        lines += ["", f"{rescored} of {len(runs)} runs were trained before thresholds weighed same and different "
                      "validation pairs equally; their figures were recomputed from their saved models under that "
                      "rule (`--rescore`, no training): which epoch a run kept was chosen by validation AUC, which "
                      "the rule does not change."]
    lines += ["", "Commands: " + "; ".join(f"`{c}`" for c in results["commands"])]
    return "\n".join(lines)


PROTOCOL_TEXT = (
    "Fine-tuning under domain shift, LFW. Test: fold 10's official 600 pairs of `pairs.txt` (300 same, "
    "300 different; LFW's folds share no people). Train and validation: the people of folds 1-9 with at least "
    "two photos (at most 4 each; a run marked 'every photo of each training person' trains on all of each "
    "training person's photos, while the validation people keep their first 4, so every run validates on the "
    "same pairs), a tenth of them (seed 0) for validation. Faces: YuNet detection and "
    "alignment on the original photo, the face nearest the centre; then the shift is applied to every aligned "
    "160x160 crop (training faces too, with other random draws): `lowres` = down to 24x24 px and back up, "
    "`mask` = the lower face covered by a surgical-mask shape. 'clean' = pretrained facenet on the unshifted "
    "faces, 'before' = pretrained facenet on the shifted faces, 'after' = fine-tuned on the shifted training "
    "faces; each is scored on the same test pairs at the threshold best on its own validation pairs (3,000 "
    "sampled pairs of the validation people, shifted like the test; their few photos a person allow about one "
    "same pair in six, so the threshold weighs same and different pairs equally, as the 1:1 test pairs do), "
    "never at one chosen on test pairs. "
    "McNemar's exact test pairs 'before' and 'after' verdicts on the same 600 pairs; p >= 0.05 reads "
    "'no change'. The last column repeats the comparison on 3,000 pairs sampled (seed 2) from all 785 photos "
    "of the 451 test people (the trainer's own report; more pairs, so smaller differences are significant). "
    "Losses: `contrastive` (pairs; margin 1.4 in distance unless the run says otherwise), `triplet` (semi-hard "
    "triplets in batches of 32 people x 4 faces; margin 0.2 in squared distance, FaceNet's), `arcface` "
    "(additive angular margin 0.5 rad, scale 30, one centre per training person starting at the person's "
    "mean pretrained embedding; same batches as triplet) and `distill` (each shifted training face's "
    "embedding pulled onto pretrained facenet's embedding of the same face unshifted: 1 - cos; only the "
    "training faces' clean versions are used) and `triplet+distill` (the two summed, triplet batches). A contrastive or distill epoch of N pairs embeds 2N faces, "
    "like a triplet or arcface epoch. The top blocks train on cached outputs of the frozen lower blocks "
    "(Adam). The run shown per shift and loss is the one with the best validation AUC, and '(chosen)' marks, "
    "per shift, the best of those: all chosen without looking at test pairs; the list of runs below holds "
    "every configuration tried, with its validation scores. LFW 10-fold with fine-tuning, a `lowres` setting "
    "chosen here fixed for every fold: sections `finetune_shift_10fold` (top 3 blocks, 4 photos a person) and "
    "`finetune_shift_10fold_top6` (top 6 blocks, every photo of each training person: the later choice)."
)


# --- LFW 10-fold: each fold's official pairs test a model fine-tuned on the other nine folds' people ---

TEN_FOLD = "finetune_shift_10fold"


def fold_parts(paths: list[str], pairs, fold: int, train_photos: dict, val_fraction: float = 0.1,
               seed: int = 0, val_images: int | None = None) -> dict:
    """Which of ``paths`` (the aligned photos of every fold) test, train and validate when ``fold``
    (counted from 0) is the test fold: ``{labels, names, part, split, test_paths}``.

    Test: the photos of the fold's official pairs. Train and validation: the training photos
    (``train_photos``: at most ``--max-images`` of each person with two or more) of the people of the
    other nine folds' pairs, a ``val_fraction`` of them (drawn with ``seed``, as for fold 10 alone)
    validating with their first ``val_images`` training photos (default: all of them). Every other photo
    is ``unused``. Raises ``ValueError`` if a test person would train or validate, or a photo of the
    fold's pairs is not a test photo."""
    from embedkit.data.splits import Split

    names = sorted({_person(p) for p in paths})
    label_of = {name: i for i, name in enumerate(names)}
    labels = np.array([label_of[_person(p)] for p in paths], dtype=np.int64)
    test_paths = set(pair_paths(pairs, fold))
    test_people = {_person(p) for p in test_paths}
    present = set(paths)
    other_people = {_person(p) for pair in pairs if pair.fold != fold for p in (pair.path_a, pair.path_b)}
    learners = sorted(label_of[n] for n in other_people - test_people
                      if n in train_photos and any(p in present for p in train_photos[n]))
    shared = other_people & test_people
    if shared:
        raise ValueError(f"fold {fold + 1}: people in this fold's pairs and in other folds' pairs: {sorted(shared)[:5]}")
    rng = np.random.default_rng(seed)
    val = set(rng.choice(learners, size=int(round(val_fraction * len(learners))), replace=False).tolist())
    learning_photos = {p for n in learners
                       for p in train_photos[names[n]][:val_images if n in val else None]}
    part = np.full(len(paths), UNUSED, dtype=object)
    for row, (path, label) in enumerate(zip(paths, labels)):
        if path in test_paths:
            part[row] = "test"
        elif path in learning_photos:
            part[row] = "val" if int(label) in val else "train"
    part = part.astype(str)
    learning = np.isin(part, ("train", "val"))
    leaked = {names[n] for n in labels[learning]} & test_people
    if leaked:
        raise ValueError(f"fold {fold + 1}: test people in training or validation: {sorted(leaked)[:5]}")
    if {paths[r] for r in np.flatnonzero(part == "test")} != test_paths & present:
        raise ValueError(f"fold {fold + 1}: not every photo of the fold's pairs is a test photo")
    split = Split(sorted(set(learners) - val), sorted(val), sorted({label_of[n] for n in test_people if n in label_of}),
                  seed=seed)
    return {"labels": labels, "names": names, "part": part, "split": split, "test_paths": sorted(test_paths)}


def fold_inputs(data: dict, fold: int):
    """``(images, split, faces, paths)`` of one fold over the crops of every fold (the same array for
    every fold: only the parts change, so the frozen-feature cache keyed by it serves all ten)."""
    from embedkit.data.folders import LabelledImages
    from embedkit.training.dataset import FaceSet

    paths = [data["paths"][k] for k in data["kept"]]
    parts = fold_parts(paths, data["pairs"], fold, data["train_photos"], val_images=data.get("val_images"))
    labels = parts["labels"]
    images = LabelledImages([str(LFW_IMAGES / p) for p in paths], labels, parts["names"], str(LFW_IMAGES))
    faces = FaceSet(data["crops"], labels, parts["part"], np.arange(len(paths)), np.zeros(len(paths), dtype=bool))
    return images, parts["split"], faces, paths


def clean_embeddings(data: dict) -> np.ndarray:
    """Pretrained facenet's embeddings of every unshifted crop of every fold (cached)."""
    from embedkit.encoder import Encoder

    key = hashlib.sha256(("\n".join(data["paths"]) + str(data["kept"].tolist())).encode()).hexdigest()[:16]
    cache = CACHE / f"clean_all_{key}.npy"
    if cache.is_file():
        return np.load(cache)
    t0 = time.perf_counter()
    emb = Encoder.from_backbone("facenet").encode(data["crops"])
    logger.info("clean embeddings of %d crops in %.0f s", len(emb), time.perf_counter() - t0)
    np.save(cache, emb)
    return emb


def _bits(correct: np.ndarray) -> str:
    return "".join("1" if c else "0" for c in correct)


def _unbits(text: str) -> np.ndarray:
    return np.array([c == "1" for c in text], dtype=bool)


def run_fold(data: dict, fold: int, shift: str, loss: str, args, clean_all: np.ndarray) -> dict:
    """Fine-tune with ``fold``'s people left out, then score its official pairs clean, before and after,
    each at the threshold best (balanced rule) on its own validation pairs."""
    from embedkit.training.trainer import split_held_out
    from embedkit.evaluation import best_threshold
    from embedkit.evaluation.metrics import mcnemar
    from embedkit.training import finetune

    images, split, faces, paths = fold_inputs(data, fold)
    out = OUT / (f"10fold_{args.name}" if args.name else "10fold") / f"fold{fold + 1:02d}"
    config = finetune_config(args, shift, loss, out)
    t0 = time.perf_counter()
    result = finetune(config, images=images, split=split, faces=faces, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    head = result.report["headline"]
    rows = result.test_indices
    ia, ib, same, missing = official_test_pairs(data, paths, rows, fold)
    held = split_held_out(config, faces)  # the trainer's validation rows and pairs
    va, vb, vsame = held.val_pairs
    clean_threshold, _ = best_threshold(_scores(clean_all[held.val], va, vb), vsame, balanced=True)
    sides = {"clean": (clean_all[rows], clean_threshold),
             "before": (result.test_embeddings["before"], head["before_threshold"]),
             "after": (result.test_embeddings["after"], head["after_threshold"])}
    row = {"fold": fold + 1, "n_test_pairs": int(same.size), "n_same": int(same.sum()), "pairs_without_face": missing,
           "same": _bits(same)}
    correct = {}
    for side, (emb, threshold) in sides.items():
        correct[side], metrics = verdicts(emb, threshold, ia, ib, same)
        row[f"{side}_accuracy"] = metrics["accuracy"]
        row[f"{side}_threshold"] = metrics["threshold"]
        row[f"{side}_auc"] = metrics["auc"]
        row[f"{side}_correct"] = _bits(correct[side])
        row[f"{side}_scores"] = [round(float(x), 6) for x in _scores(emb, ia, ib)]
    cost = row["clean_accuracy"] - row["before_accuracy"]
    row["recovered_fraction"] = (row["after_accuracy"] - row["before_accuracy"]) / cost if cost > 0 else None
    row["mcnemar"] = mcnemar(correct["before"], correct["after"])
    row.update({"people": split.summary(), "crops": faces.counts(),
                "best_validation": result.report["best_validation"],
                "start_validation": result.report["start_validation"],
                "sampled_test": sampled_test(result.report), "phases": result.report["phases"],
                "seconds": seconds, "out": str(out)})
    logger.info("fold %d: clean %.4f, before %.4f, after %.4f (McNemar %d / %d, p = %.3g) in %.0f s", fold + 1,
                row["clean_accuracy"], row["before_accuracy"], row["after_accuracy"],
                row["mcnemar"]["only_before_right"], row["mcnemar"]["only_after_right"], row["mcnemar"]["p_value"],
                seconds)
    return row


def pooled(folds: list[dict]) -> dict:
    """The finished folds together: mean and std over folds, McNemar on every paired verdict, TAR@1e-3
    on every pair's score minus its own fold's validation threshold (10 models, one scale)."""
    from embedkit.evaluation import verification_report
    from embedkit.evaluation.metrics import mcnemar

    out = {"folds": [f["fold"] for f in folds], "n_folds": len(folds)}
    same = np.concatenate([_unbits(f["same"]) for f in folds])
    out.update({"n_pairs": int(same.size), "n_same": int(same.sum()), "n_different": int((~same).sum())})
    correct = {}
    for side in ("clean", "before", "after"):
        accuracies = np.array([f[f"{side}_accuracy"] for f in folds])
        correct[side] = np.concatenate([_unbits(f[f"{side}_correct"]) for f in folds])
        relative = np.concatenate([np.array(f[f"{side}_scores"]) - f[f"{side}_threshold"] for f in folds])
        out[side] = {"accuracy": float(correct[side].mean()), "fold_mean": float(accuracies.mean()),
                     "fold_std": float(accuracies.std(ddof=1)) if len(folds) > 1 else None,
                     "fold_sem": float(accuracies.std(ddof=1) / np.sqrt(len(folds))) if len(folds) > 1 else None,
                     "tar_at_far_1e-3": verification_report(relative, same)["tar_at_far_1e-3"]}
    cost = out["clean"]["accuracy"] - out["before"]["accuracy"]
    out["recovered_fraction"] = (out["after"]["accuracy"] - out["before"]["accuracy"]) / cost if cost > 0 else None
    out["mcnemar"] = mcnemar(correct["before"], correct["after"])
    return out


def ten_fold(data: dict, args) -> None:
    """Every fold of ``args.folds`` not stored yet (same training settings), stored as it finishes."""
    import json

    from benchmarks.results import RESULTS_JSON_DIR

    shift, loss = args.shifts.split(",")[0], args.losses.split(",")[0]
    if "," in args.shifts or "," in args.losses:
        raise SystemExit("--ten-fold takes one shift and one loss (fixed in advance for every fold)")
    training = {"shift": shift, "loss": loss, "training": variant_name(args), "max_images": args.max_images}
    name = args.name or TEN_FOLD
    path = RESULTS_JSON_DIR / f"{name}.json"
    results = json.loads(path.read_text())["results"] if path.is_file() else None
    if results is None or results["setting"] != training:
        if results is not None:
            logger.warning("%s holds another setting (%s); starting again", path, results["setting"])
        results = {"setting": training, "folds": {}, "commands": []}
    command = "python benchmarks/bench_finetune_shift.py " + " ".join(sys.argv[1:])
    results["commands"] = list(dict.fromkeys(results["commands"] + [command.strip()]))
    clean_all = clean_embeddings(data)
    for fold in [int(k) - 1 for k in args.folds.split(",")]:
        if str(fold + 1) in results["folds"]:
            logger.info("fold %d: stored; skipped", fold + 1)
            continue
        row = run_fold(data, fold, shift, loss, args, clean_all)
        row["config"] = finetune_config(args, shift, loss, Path(row["out"])).to_dict()
        results["folds"][str(fold + 1)] = row
        finished = [results["folds"][k] for k in sorted(results["folds"], key=int)]
        results["pooled"] = pooled(finished)
        write_json(name, results)
        write_section(name, ten_fold_markdown(results))


def _mean_std(p: dict) -> str:
    if p["fold_std"] is None:
        return _pct(p["fold_mean"])
    return f"{100 * p['fold_mean']:.2f} ± {100 * p['fold_std']:.2f}%"


def ten_fold_markdown(results: dict) -> str:
    setting, folds = results["setting"], [results["folds"][k] for k in sorted(results["folds"], key=int)]
    p = results["pooled"]
    lines = [TEN_FOLD_TEXT.format(**setting), "",
             f"**{p['n_folds']} of 10 folds** finished ({', '.join(str(k) for k in p['folds'])}); "
             f"{p['n_pairs']} test pairs ({p['n_same']} same / {p['n_different']} different).", ""]
    rows = []
    for f in folds:
        m = f["mcnemar"]
        rows.append({"fold": f["fold"], "people train / val / test":
                     f"{f['people']['train']} / {f['people']['val']} / {f['people']['test']}",
                     "clean": _pct(f["clean_accuracy"]), "before": _pct(f["before_accuracy"]),
                     "after": _pct(f["after_accuracy"]), "recovered": _pct(f["recovered_fraction"]),
                     "McNemar: only before / only after right, p":
                         f"{m['only_before_right']} / {m['only_after_right']}, p = {m['p_value']:.2g}",
                     "AUC before / after": f"{f['before_auc']:.4f} / {f['after_auc']:.4f}",
                     "val AUC start / best": f"{f['start_validation']['val_auc']:.4f} / "
                                             f"{f['best_validation']['val_auc']:.4f}",
                     "minutes": f"{f['seconds'] / 60:.1f}"})
    lines.append(markdown_table(rows))
    m = p["mcnemar"]
    lines += ["", markdown_table([{"": side, "accuracy, mean ± std over folds": _mean_std(p[side]),
                                   "standard error": _pct(p[side]["fold_sem"]),
                                   f"pooled accuracy ({p['n_pairs']} pairs)": _pct(p[side]["accuracy"]),
                                   "pooled TAR@FAR=1e-3": _pct(p[side]["tar_at_far_1e-3"])}
                                  for side in ("clean", "before", "after")]),
              "", f"Pooled over the {p['n_pairs']} pairs: recovered {_pct(p['recovered_fraction'])} of what the "
                  f"shift costs ((after - before) / (clean - before)); McNemar, before vs after on the same pairs: "
                  f"{m['only_before_right']} pairs right only before, {m['only_after_right']} only after, "
                  f"p = {m['p_value']:.2g}: {m['verdict']}.",
              "", "Commands: " + "; ".join(f"`{c}`" for c in results["commands"])]
    return "\n".join(lines)


TEN_FOLD_TEXT = (
    "Fine-tuning under the `{shift}` shift, LFW 10-fold (the `finetune_shift` protocol, once per fold). For "
    "each fold k: test = fold k's official 600 pairs of `pairs.txt` (300 same, 300 different); train and "
    "validation = the people of the other nine folds' pairs with at least two photos (at most {max_images} "
    "each unless the setting gives training people more; a validating person always keeps their first "
    "{max_images}), a tenth of them (seed 0) validating; no test person trains or validates (checked in code). One "
    "setting, fixed before any fold ran and the same for all ten (chosen on fold 10's validation AUC): "
    "`{loss}` loss, {training}. 'clean' = pretrained facenet on the unshifted faces, 'before' = pretrained "
    "facenet on the shifted faces, 'after' = fine-tuned; each at the threshold best (same and different pairs "
    "weighed equally) on its own fold's validation pairs (3,000 sampled pairs of the validation people), never "
    "one chosen on test pairs. Mean ± std: over the folds' accuracies (sample std); standard error = std / "
    "sqrt(folds). Pooled TAR@FAR=1e-3: every test pair's score minus its own fold's validation threshold "
    "(each fold's 'after' is its own model), over all pooled different pairs; McNemar's exact test on the "
    "pooled paired verdicts. 'minutes': the fold's fine-tuning run; the first fold run also computes the frozen "
    "features of every fold's crops, once."
)


def render_ten_fold(name: str = TEN_FOLD) -> None:
    """Rewrite a 10-fold section from its stored JSON."""
    import json

    from benchmarks.results import RESULTS_JSON_DIR

    stored = json.loads((RESULTS_JSON_DIR / f"{name}.json").read_text())
    write_section(name, ten_fold_markdown(stored["results"]), stored=stored)


def render() -> None:
    """Rewrite the section from the stored JSON; a run stored without the trainer's sampled-test
    figures gets them from its own model folder's report."""
    import json

    from benchmarks.results import RESULTS_JSON_DIR

    stored = json.loads((RESULTS_JSON_DIR / "finetune_shift.json").read_text())
    results = stored["results"]
    for row in results["runs"].values():
        out = Path(row["config"]["out"])
        if "start_validation" not in row and (out / "embedkit_model.json").is_file():
            row["start_validation"] = json.loads((out / "embedkit_model.json").read_text())["metadata"]["history"][0]
        if "sampled_test" not in row and (out / "finetune_report.json").is_file():
            report = json.loads((out / "finetune_report.json").read_text())
            report.setdefault("start_validation", row["start_validation"])
            row["sampled_test"] = sampled_test(report)
        row["training"] = row["training"].replace("head 0 ep + ", "")
    results["runs"] = {f"{r['shift']} | {r['loss']} | {r['training']}": r for r in results["runs"].values()}
    choose(results)
    write_json("finetune_shift", results)
    write_section("finetune_shift", markdown(results), stored=stored)


def _load_previous() -> dict:
    import json

    from benchmarks.results import RESULTS_JSON_DIR

    path = RESULTS_JSON_DIR / "finetune_shift.json"
    if path.is_file():
        return json.loads(path.read_text())["results"]
    return {"shifts": {}, "runs": {}, "commands": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shifts", default="lowres,mask")
    parser.add_argument("--losses", default="contrastive,triplet")
    parser.add_argument("--max-images", type=int, default=4,
                        help="photos per training person (and per validation person, always)")
    parser.add_argument("--train-images", type=int, default=None,
                        help="photos per training person, 0: every photo (default: --max-images); validation "
                             "people keep --max-images, so every run validates on the same pairs")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the head phase (backbone frozen)")
    parser.add_argument("--unfreeze", type=int, default=3, help="top backbone blocks trained in the second phase")
    parser.add_argument("--unfreeze-epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-4, help="head phase learning rate")
    parser.add_argument("--unfreeze-lr", type=float, default=1e-4)
    parser.add_argument("--pairs", type=int, default=8000, help="pairs per epoch (a triplet epoch embeds as many faces)")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--margin", type=float, default=None, help="the loss's margin (default: the loss's own)")
    parser.add_argument("--hard-negatives", type=float, default=0.0,
                        help="contrastive: fraction of different pairs mined as hard negatives each epoch")
    parser.add_argument("--prepare", action="store_true", help="only align and cache the crops")
    parser.add_argument("--rescore", action="store_true",
                        help="score every stored run's saved model again (current threshold rule), without training")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite the RESULTS.md section from the stored JSON (and the runs' model folders)")
    parser.add_argument("--ten-fold", action="store_true",
                        help="LFW 10-fold: one shift, one loss and training setting for every fold, each fold's "
                             "people left out of training; writes finetune_shift_10fold (finished folds kept)")
    parser.add_argument("--folds", default="1,2,3,4,5,6,7,8,9,10", help="--ten-fold: the folds to run (1-10)")
    parser.add_argument("--name", default=None,
                        help=f"--ten-fold: the results' name (default {TEN_FOLD}); another setting gets its own")
    args = parser.parse_args()
    if args.render:
        render_ten_fold(args.name or TEN_FOLD) if args.ten_fold else render()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("tensorflow", "absl", "h5py", "embedkit.data.pairs"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.ten_fold:
        data = all_folds_crops(args.max_images, train_images=args.train_images)
        if args.prepare:
            clean_embeddings(data)
        else:
            ten_fold(data, args)
        return
    data = lfw_crops(args.max_images, train_images=args.train_images)
    if args.prepare:
        return
    if args.rescore:
        rescore(data)
        return
    from embedkit.training import FinetuneConfig

    clean = clean_reference(data, FinetuneConfig(data="lfw", out="unused", seed=0, eval_pairs=3000))
    command = "python benchmarks/bench_finetune_shift.py " + " ".join(sys.argv[1:])
    for shift in [s for s in args.shifts.split(",") if s]:
        for loss in [x for x in args.losses.split(",") if x]:
            row = run_one(data, shift, loss, args, clean)
            results = _load_previous()  # read again: another run may have stored its rows meanwhile
            results["commands"] = list(dict.fromkeys(results["commands"] + [command.strip()]))
            results["runs"][f"{shift} | {loss} | {row['training']}"] = row
            choose(results)
            write_json("finetune_shift", results)
            write_section("finetune_shift", markdown(results))


if __name__ == "__main__":
    main()
