"""Fine-tuning under domain shift: does fine-tuning win back what a shift costs the pretrained model?

Protocol (LFW, identity-disjoint, official pairs):

* test: fold 10's official 600 pairs of ``pairs.txt`` (300 same, 300 different);
  no test person is seen in training or validation (LFW's folds share no people);
* train / validation: the people of folds 1-9 with at least two photos (at most
  ``--max-images`` each); a tenth of them, drawn with seed 0, validate (model
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
"""

from __future__ import annotations

import argparse
import hashlib
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
logger = logging.getLogger("bench_finetune_shift")


def lfw_crops(max_images: int, size: int = 160) -> dict:
    """Aligned crops of the benchmark's photos, cached: ``{paths, crops, kept}``."""
    from embedkit.evaluation.pairs import read_lfw_pairs

    pairs = read_lfw_pairs(LFW_PAIRS)
    test_paths = sorted({p for pair in pairs if pair.fold == TEST_FOLD for p in (pair.path_a, pair.path_b)})
    train_people = sorted({p.split("/")[0] for pair in pairs if pair.fold != TEST_FOLD
                           for p in (pair.path_a, pair.path_b)})
    train_paths = []
    for person in train_people:
        photos = sorted(f for f in os.listdir(LFW_IMAGES / person) if f.endswith(".jpg"))
        if len(photos) >= 2:
            train_paths += [f"{person}/{f}" for f in photos[:max_images]]
    paths = train_paths + test_paths
    key = hashlib.sha256(("\n".join(paths) + f"|{size}|yunet").encode()).hexdigest()[:16]
    cache = CACHE / f"crops_{key}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return {"paths": paths, "crops": data["crops"], "kept": data["kept"], "pairs": pairs}
    from embedkit.faces import FaceExtractor
    from embedkit.training.dataset import extract_crops

    t0 = time.perf_counter()
    crops, kept = extract_crops([str(LFW_IMAGES / p) for p in paths], FaceExtractor(size, "yunet"), progress=True)
    logger.info("aligned %d of %d photos in %.0f s", len(kept), len(paths), time.perf_counter() - t0)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, crops=crops, kept=kept)
    return {"paths": paths, "crops": crops, "kept": kept, "pairs": pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-images", type=int, default=4, help="photos per training person")
    parser.add_argument("--prepare", action="store_true", help="only align and cache the crops")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data = lfw_crops(args.max_images)
    if args.prepare:
        return


if __name__ == "__main__":
    main()
