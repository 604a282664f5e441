"""Make the impostor-score reference shipped for a pretrained backbone.

Protocol: every image named in LFW's ``pairs.txt`` (deep-funneled photos) is
embedded once with the pretrained backbone and the default face setting
(YuNet detection, aligned crop; the face nearest the image centre, as in
``embedkit evaluate``). The impostor pairs are every pair of those images
showing two different people; their cosine similarities' quantiles become
``embedkit/evaluation/references/<backbone>.json``. As a check, the table
is compared with the 3,000 "different" pairs of ``pairs.txt`` alone.

    python benchmarks/make_impostor_reference.py               # facenet, writes the package table
    python benchmarks/make_impostor_reference.py --backbone vgg16

Embeddings are cached in ``benchmarks/.cache/`` (git-ignored), keyed by model
id, so a rerun only recomputes the table. Accuracy-type figures: machine load
does not change them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.results import markdown_table, write_json, write_section  # noqa: E402

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
LFW = FACES / "lfw" / "lfw-deepfunneled"
PAIRS = FACES / "lfw" / "pairs.txt"
CACHE = Path(__file__).resolve().parent / ".cache"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "embedkit" / "evaluation" / "references"


def embed_pair_images(pipeline, pairs, root: Path) -> dict[str, np.ndarray]:
    from tqdm import tqdm

    from embedkit.evaluation.evaluate import embed_images

    cache = CACHE / f"impostor-{pipeline.encoder.model_id}-{pipeline.extractor.detector_name}.npz"
    if cache.is_file():
        data = np.load(cache)
        return dict(zip(data["paths"].tolist(), data["vectors"]))
    paths = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
    bar = tqdm(total=len(paths), unit="photo", desc="embedding")
    embedded = embed_images(pipeline, [str(root / p) for p in paths], progress=lambda _: bar.update(1))
    bar.close()
    vectors = {str(Path(p).relative_to(root)): v for p, v in embedded.vectors.items()}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, paths=np.array(list(vectors)), vectors=np.stack(list(vectors.values())))
    return vectors


def cross_person_scores(vectors: dict[str, np.ndarray]) -> np.ndarray:
    """Similarities of every pair of images of two different people."""
    paths = sorted(vectors)
    people = np.array([p.split("/")[0] for p in paths])
    matrix = np.stack([vectors[p] for p in paths]).astype(np.float32)
    scores = []
    for start in range(0, len(paths), 512):
        block = matrix[start:start + 512] @ matrix.T
        rows = np.arange(start, min(start + 512, len(paths)))
        upper = np.arange(len(paths))[None, :] > rows[:, None]  # each pair once
        different = people[rows][:, None] != people[None, :]
        scores.append(block[upper & different])
    return np.concatenate(scores)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="facenet")
    parser.add_argument("--output", type=Path, default=None, help="Table file (default: the package's).")
    args = parser.parse_args(argv)

    from embedkit.runtime import load_encoder
    from embedkit.evaluation.pairs import read_lfw_pairs
    from embedkit.evaluation.reference import ImpostorReference
    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline

    encoder = load_encoder(backbone=args.backbone, job="bulk")
    pipeline = FacePipeline(encoder, FaceExtractor.for_encoder(encoder))
    pairs = read_lfw_pairs(PAIRS)
    vectors = embed_pair_images(pipeline, pairs, LFW)
    all_impostors = cross_person_scores(vectors)
    official = np.array([float(vectors[p.path_a] @ vectors[p.path_b]) for p in pairs
                         if not p.same and p.path_a in vectors and p.path_b in vectors])
    n_people = len({p.split("/")[0] for p in vectors})
    setting = pipeline.extractor.describe()
    about = {
        "source": f"LFW ({len(vectors):,} photos of {n_people:,} people named in pairs.txt)",
        "protocol": "every pair of two different people's photos among the images of LFW pairs.txt "
                    "(deep-funneled), one face per photo (the one nearest the centre)",
        "dataset": "LFW deep-funneled",
        "model_id": encoder.model_id,
        "backbone": encoder.backbone,
        "face_setting": setting,
        "made_by": "benchmarks/make_impostor_reference.py",
    }
    reference = ImpostorReference.from_scores(all_impostors, about)
    out = args.output or PACKAGE_DIR / f"{args.backbone}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(reference.to_dict(), indent=1) + "\n")

    check_levels = [0.5, 0.9, 0.99, 0.999]
    rows = []
    for level in check_levels:
        rows.append({"quantile": f"{level:g}",
                     f"all {len(all_impostors):,} cross-person pairs": f"{np.quantile(all_impostors, level):.3f}",
                     f"{len(official):,} pairs.txt 'different' pairs": f"{np.quantile(official, level):.3f}"})
    threshold = encoder.same_threshold
    fpr_all = float(np.mean(all_impostors >= threshold))
    fpr_official = float(np.mean(official >= threshold))
    results = {"backbone": args.backbone, "model_id": encoder.model_id, "face_setting": setting,
               "photos": len(vectors), "people": n_people, "impostor_pairs": int(len(all_impostors)),
               "official_different_pairs": int(len(official)), "threshold": threshold,
               "share_above_threshold": {"all": fpr_all, "official": fpr_official},
               "quantiles": {str(level): {"all": float(np.quantile(all_impostors, level)),
                                          "official": float(np.quantile(official, level))}
                             for level in check_levels},
               "table": str(out.relative_to(Path(__file__).resolve().parents[1]))}
    name = f"impostor_reference_{args.backbone.replace('+', '_')}"
    write_json(name, results)
    write_section(name, (
        f"### Impostor-score reference: {args.backbone} (pretrained, {setting['detector']} detection)\n\n"
        f"Shipped as `{results['table']}`; `embedkit compare` and the web app place a score among these pairs. "
        f"{len(vectors):,} photos of {n_people:,} people (every image named in LFW `pairs.txt`, deep-funneled), "
        f"each embedded once (face nearest the centre); impostor pairs = every pair of two different people's "
        f"photos: {len(all_impostors):,}. Check against the {len(official):,} 'different' pairs of `pairs.txt`:\n\n"
        + markdown_table(rows)
        + f"\n\nShare of impostor pairs at or above the calibrated threshold {threshold:.3f} (false accepts): "
        f"{fpr_all:.4%} of all pairs, {fpr_official:.4%} of the pairs.txt pairs.\n"
    ))
    print(f"wrote {out}: {len(all_impostors):,} impostor pairs from {len(vectors):,} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
