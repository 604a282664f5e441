"""Does `embedkit calibrate` land at the requested FAR on people it never saw?

LFW (pretrained facenet, YuNet, main face per photo, from the
``benchmarks/lfw_cache.py`` cache): people with at least 2 photos, dealt into
5 identity-disjoint folds; each fold is scored at the threshold chosen on the
other four (:func:`embedkit.calibration.calibrate_vectors`, the code behind
the command). Different-people pairs beyond 3 million are sampled.

    python benchmarks/bench_calibrate.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_people import main_faces, photo_counts  # noqa: E402
from benchmarks.lfw_cache import fill, load_cache  # noqa: E402
from benchmarks.results import markdown_table, write_json, write_section  # noqa: E402


def main() -> int:
    from embedkit.calibration import calibrate_vectors

    faces = main_faces(load_cache(fill()))
    counts = photo_counts()
    keep = np.array([counts[p] >= 2 for p in faces["people"]])
    rows, results = [], []
    for far in (1e-2, 1e-3, 1e-4):
        report = calibrate_vectors(faces["vectors"][keep], faces["people"][keep], far=far, folds=5)
        report.pop("per_fold")
        results.append(report)
        held = report["held_out"]
        rows.append({"target FAR": f"{far:g}", "threshold (all pairs)": f"{report['threshold']:.4f}",
                     "held-out FAR": f"{held['far']:.2e} ({held['false_accepts']} of {held['n_impostor']})",
                     "held-out TAR": f"{held['tar']:.4f}", "people": report["n_people"],
                     "same / different pairs": f"{report['n_genuine']} / {report['n_impostor']}"})
        print(rows[-1], flush=True)
    write_json("calibrate", {"command": "python benchmarks/bench_calibrate.py", "runs": results})
    write_section("calibrate", "Threshold calibration on held-out people (`python benchmarks/bench_calibrate.py`): "
                  "LFW people with >= 2 photos, pretrained facenet + YuNet, main face per photo; 5 "
                  "identity-disjoint folds, each scored at the threshold chosen on the other four.\n\n"
                  + markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
