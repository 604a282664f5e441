"""Whole-process wall time and peak memory of cold embedkit commands vs face_recognition's CLI.

Every measurement starts a fresh process (nothing warm but the OS file
cache) and polls the resident memory of its whole process tree every 10 ms
(psutil); runs of the tools alternate, and the median of ``--repeats`` runs
is reported, with each embedkit figure as a ratio to face_recognition's.

Jobs (LFW deep-funneled photos):

- ``compare``: ``embedkit compare A B`` vs ``face_recognition KNOWN UNKNOWN``
  with one photo in each folder (its smallest whole job); ``compare-sface``
  and ``compare-fused``: the same with ``--backbone sface`` / ``facenet+sface``.
- ``query``: ``embedkit query Q --index I`` against an index of the LFW
  photos (about 15k faces; built once into ``benchmarks/.cache/``) vs the same
  one-photo face_recognition run (face_recognition has no index: it would
  re-encode the 13k photos on every query).
- ``index300``: ``embedkit index`` of 300 photos into a fresh index vs
  ``face_recognition`` with the 300 photos as its known people (it encodes
  each once) and one unknown photo; embedkit's photos/s inside the run comes
  from its own report (``seconds``).
- ``reindex``: ``embedkit index`` of the same, unchanged folder (target <= 1.5 s).
- ``fail``: ``embedkit compare`` with a missing photo (target < 1 s, before any model loads).

Before timing, one untimed run of each embedkit command makes sure the
weights and the fast-runtime conversion are cached (first use only).

    python benchmarks/bench_cold.py --setup        # face_recognition venv at /work/peers-venv (once)
    python benchmarks/bench_cold.py                # all jobs, 5 alternating runs each
    python benchmarks/bench_cold.py --jobs compare,reindex,fail --repeats 3
    python benchmarks/bench_cold.py --backends     # LiteRT vs TensorFlow graph, faces/s in one process

Writes section ``cold`` of ``benchmarks/RESULTS.md`` and ``benchmarks/results/cold.json``
(``cold_backends`` for ``--backends``). Timings are only meaningful on a quiet
machine: the load average before and after is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import RESULTS_JSON_DIR, markdown_table, write_json, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
FACES = HERE.parents[1] / "shared" / "faces"
LFW = FACES / "lfw" / "lfw-deepfunneled"
CACHE = HERE / ".cache"
DEFAULT_VENV = Path("/work/peers-venv")
FR_PACKAGES = [["dlib-bin", "face-recognition-models", "Click>=6.0", "Pillow", "numpy"],
               ["--no-deps", "face_recognition"]]
JOBS = ("compare", "compare-sface", "compare-fused", "query", "index300", "reindex", "fail")
PAIR = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg")
QUERY_PHOTO = "George_W_Bush/George_W_Bush_0001.jpg"


def measure(command: list[str], env: dict | None = None) -> dict:
    """Run ``command``; wall seconds, peak RSS of its process tree (MB), exit code."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [parent, *parent.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.01)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mb": peak / 2**20, "exit_code": proc.returncode,
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")[-2000:]}


def linked_folder(folder: Path, photos: list[Path]) -> Path:
    """A fresh flat folder of symbolic links to ``photos`` (the shared data stays read-only).

    Flat, because face_recognition's CLI reads only the files directly in a
    folder (LFW file names are unique: they start with the person's name).
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for photo in photos:
        (folder / photo.name).symlink_to(photo)
    return folder


def lfw_photos(n: int | None) -> list[Path]:
    photos = sorted(LFW.glob("*/*.jpg"))
    return photos if n is None else photos[:n]


def embedkit_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "embedkit.cli", *map(str, args)]


def fr_cmd(venv: Path, known: Path, unknown: Path) -> list[str]:
    return [str(venv / "bin" / "face_recognition"), "--cpus", "1", str(known), str(unknown)]


def build_jobs(args, work: Path) -> dict:
    """``{job: {"embedkit": (command, setup), "face_recognition": command or None}}``."""
    a, b = (LFW / p for p in PAIR)
    one_known = linked_folder(work / "fr-known1", [a])
    one_unknown = linked_folder(work / "fr-unknown1", [b])
    photos300 = lfw_photos(300)
    folder300 = linked_folder(work / "photos300", photos300)
    fr = args.venv if (args.venv / "bin" / "face_recognition").exists() else None
    jobs = {}
    fr_small = fr_cmd(fr, one_known, one_unknown) if fr else None
    jobs["compare"] = (embedkit_cmd("compare", a, b), None, fr_small)
    jobs["compare-sface"] = (embedkit_cmd("compare", a, b, "--backbone", "sface"), None, fr_small)
    jobs["compare-fused"] = (embedkit_cmd("compare", a, b, "--backbone", "facenet+sface"), None, fr_small)
    jobs["query"] = (embedkit_cmd("query", LFW / QUERY_PHOTO, "--index", args.query_index), None, fr_small)
    fresh = work / "index300"
    jobs["index300"] = (embedkit_cmd("index", folder300, "--index", fresh, "--json"),
                        lambda: shutil.rmtree(fresh, ignore_errors=True),
                        fr_cmd(fr, folder300, one_unknown) if fr else None)
    kept = work / "reindex"
    jobs["reindex"] = (embedkit_cmd("index", folder300, "--index", kept, "--json"), None, None)
    jobs["fail"] = (embedkit_cmd("compare", work / "missing.jpg", b), None, None)
    return jobs, kept, folder300


def ensure_query_index(index: Path, n_photos: int | None) -> None:
    """Index the LFW photos once into ``index`` (kept between runs)."""
    if (index / "metadata.sqlite").is_file():
        return
    folder = linked_folder(CACHE / "lfw-links", lfw_photos(n_photos))
    print(f"building the query index of {len(list(folder.iterdir()))} photos into {index} (once) ...", flush=True)
    result = subprocess.run(embedkit_cmd("index", folder, "--index", index), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"building the query index failed: {result.stderr[-1000:]}")


def median_row(runs: list[dict]) -> dict:
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "peak_mb": statistics.median(r["peak_mb"] for r in runs),
            "runs": [{k: round(r[k], 3) for k in ("seconds", "peak_mb")} for r in runs]}


def run_cold(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    try:
        wanted = [j for j in args.jobs.split(",") if j]
        if "query" in wanted:
            ensure_query_index(args.query_index, args.query_photos)
        jobs, kept, folder300 = build_jobs(args, work)
        # Untimed: weights and conversion cached, the kept index built.
        for command in (embedkit_cmd("compare", *(LFW / p for p in PAIR)),
                        embedkit_cmd("index", folder300, "--index", kept)):
            subprocess.run(command, capture_output=True)
        load_before = os.getloadavg()
        results = {}
        for job in wanted:
            job_load = os.getloadavg()
            ek_command, before, fr = jobs[job]
            runs = {"embedkit": [], "face_recognition": []}
            for _ in range(args.repeats):
                if before:
                    before()
                runs["embedkit"].append(measure(ek_command))
                if fr:
                    runs["face_recognition"].append(measure(fr))
            entry = {"repeats": args.repeats, "load_before": job_load, "load_after": os.getloadavg(),
                     "embedkit": median_row(runs["embedkit"]),
                     "embedkit_exit_codes": sorted({r["exit_code"] for r in runs["embedkit"]}),
                     "command": " ".join(ek_command[2:])}
            if job == "index300":
                inside = [json.loads(r["stdout"])["seconds"] for r in runs["embedkit"] if r["exit_code"] == 0]
                if inside:
                    entry["photos_per_second_in_run"] = 300 / statistics.median(inside)
                entry["photos_per_second_whole_process"] = 300 / entry["embedkit"]["seconds"]
            if runs["face_recognition"]:
                entry["face_recognition"] = median_row(runs["face_recognition"])
                entry["time_ratio"] = entry["embedkit"]["seconds"] / entry["face_recognition"]["seconds"]
                entry["memory_ratio"] = entry["embedkit"]["peak_mb"] / entry["face_recognition"]["peak_mb"]
            results[job] = entry
            print(job, json.dumps({k: v for k, v in entry.items() if k != "command"}, default=str)[:400], flush=True)
        return {"jobs": results, "repeats": args.repeats, "load_before": load_before, "load_after": os.getloadavg(),
                "face_recognition": str(args.venv) if any("face_recognition" in r for r in results.values()) else None}
    finally:
        shutil.rmtree(work, ignore_errors=True)


TARGETS = {"compare": "time <= 0.5x, memory <= 400 MB", "compare-sface": "time <= 0.5x, memory <= 400 MB",
           "compare-fused": "time <= 0.5x, memory <= 400 MB", "query": "time <= 1x, memory <= 400 MB",
           "index300": ">= 3x faster (time <= 0.33x), memory <= 1 GB", "reindex": "<= 1.5 s", "fail": "< 1 s"}


def markdown(data: dict, command: str) -> str:
    rows = []
    for job, e in data["jobs"].items():
        fr = e.get("face_recognition")
        rows.append({
            "job": job, "target": TARGETS[job], "runs": str(e.get("repeats", data["repeats"])),
            "load before/after": "/".join(f"{x:.1f}" for x in (e.get("load_before", data["load_before"])[0],
                                                               e.get("load_after", data["load_after"])[0])),
            "embedkit s": f"{e['embedkit']['seconds']:.2f}", "embedkit peak MB": f"{e['embedkit']['peak_mb']:.0f}",
            "face_recognition s": f"{fr['seconds']:.2f}" if fr else "-",
            "face_recognition peak MB": f"{fr['peak_mb']:.0f}" if fr else "-",
            "time ratio": f"{e['time_ratio']:.2f}x" if fr else "-",
            "memory ratio": f"{e['memory_ratio']:.2f}x" if fr else "-",
            "photos/s": (f"{e['photos_per_second_in_run']:.1f} in run, {e['photos_per_second_whole_process']:.1f} "
                         f"whole process" if "photos_per_second_in_run" in e else "-"),
        })
    load = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(data["load_before"], data["load_after"]))
    return "\n".join([
        "### Cold commands: embedkit vs face_recognition's CLI",
        "",
        "Whole processes started fresh, median of `runs` alternating runs; peak memory is the "
        "resident set of the whole process tree, polled every 10 ms. face_recognition runs with `--cpus 1` on "
        "one known and one unknown photo (compare, query) or 300 known photos (index300). The 1-minute load "
        "average before/after each job is shown: figures taken under load (above 2 on these 2 cores) are "
        f"not measurements. Last run's load (1/5/15 min) before/after: {load}.",
        "",
        markdown_table(rows),
        "",
        f"Command: `{command}`",
    ])


START_SNIPPET = """
import sys, time, numpy as np
started = time.perf_counter()
from embedkit.runtime import load_encoder
encoder = load_encoder(backend=sys.argv[1], job="bulk")
encoder.encode(np.zeros((1, 160, 160, 3), np.uint8))
print(time.perf_counter() - started)
"""


def start_seconds(backend: str, repeats: int) -> float:
    """Median seconds for a fresh process to import, load ``backend``'s facenet and embed one face."""
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", START_SNIPPET, backend], capture_output=True, text=True,
                             check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def run_backends(args) -> dict:
    """Faces/s of each back-end on the same aligned LFW crops, in one process (after warm-up), and the
    job size from which TensorFlow's faster bulk rate repays its slower start (the bulk switch)."""
    import numpy as np

    from embedkit.faces import FaceExtractor
    from embedkit.runtime import load_encoder
    from embedkit.runtime.select import BULK_TF_MIN_FACES

    crops = []
    extractor = FaceExtractor(160)
    for photo in lfw_photos(args.backend_faces):
        faces = extractor.from_file(photo)
        if faces:
            crops.append(faces[0].crop)
    crops = np.stack(crops)
    encoders = {"litert": load_encoder(backend="litert"), "tensorflow": load_encoder(backend="tensorflow")}
    out = {}
    for name, encoder in encoders.items():
        encoder.encode(crops[:64])
        encoder.encode(crops[:1])
    for batch in (1, 64):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            n = len(crops) if batch == 64 else min(len(crops), 32)
            for start in range(0, n, batch):
                encoder.encode(crops[start:start + batch], batch_size=batch)
            out[f"{name} batch {batch}"] = n / (time.perf_counter() - started)
    starts = {name: start_seconds(name, 3) for name in encoders}
    per_face_saving = 1 / out["litert batch 64"] - 1 / out["tensorflow batch 64"]
    break_even = (starts["tensorflow"] - starts["litert"]) / per_face_saving if per_face_saving > 0 else None
    return {"faces_per_second": out, "faces": len(crops), "start_seconds": starts,
            "break_even_faces": None if break_even is None else round(break_even),
            "bulk_tf_min_faces": BULK_TF_MIN_FACES, "load": os.getloadavg()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="Create face_recognition's venv (--venv) and exit.")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--query-index", type=Path, default=CACHE / "index-lfw")
    parser.add_argument("--query-photos", type=int, default=None, help="Index only the first N LFW photos.")
    parser.add_argument("--backends", action="store_true", help="Compare back-ends' faces/s in one process.")
    parser.add_argument("--backend-faces", type=int, default=256)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the last run's figures for jobs not rerun.")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_cold.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.setup:
        if not (args.venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(args.venv)], check=True)
        for packages in FR_PACKAGES:
            subprocess.run([str(args.venv / "bin" / "python"), "-m", "pip", "install", "-q", *packages], check=True)
        return 0
    if args.backends:
        data = run_backends(args)
        print(json.dumps(data, indent=2))
        if not args.no_write:
            rows = [{"back-end, batch": k, "faces/s": f"{v:.1f}"} for k, v in data["faces_per_second"].items()]
            write_json("cold_backends", {"command": command, **data})
            write_section("cold_backends", "\n".join([
                "### Inference back-ends: faces/s in one warm process", "",
                f"{data['faces']} aligned LFW crops, facenet; LiteRT (XNNPACK) vs TensorFlow's frozen graph; load "
                f"average {', '.join(f'{x:.1f}' for x in data['load'])}.", "", markdown_table(rows), "",
                "Start (fresh process: import, load facenet, embed one face; median of 3): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in data["start_seconds"].items())
                + f". TensorFlow's bulk rate repays its slower start from about {data['break_even_faces']} faces "
                f"(embedkit switches bulk jobs to TensorFlow from {data['bulk_tf_min_faces']} faces).", "",
                f"Command: `{command}`"]))
        return 0
    data = run_cold(args)
    earlier = RESULTS_JSON_DIR / "cold.json"
    if args.keep and earlier.is_file():  # jobs not rerun keep their last figures
        data["jobs"] = {**json.loads(earlier.read_text())["results"]["jobs"], **data["jobs"]}
    if not args.no_write:
        write_json("cold", {"command": command, **data})
        write_section("cold", markdown(data, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
