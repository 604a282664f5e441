"""Rewrite the README's figures table from ``benchmarks/results/*.json``, so no figure is typed by hand.

Each row reads one result file written by a benchmark script (named in the
row); a file that is missing leaves its row out. The table sits between
``<!-- BEGIN figures -->`` and ``<!-- END figures -->`` in README.md.

    python benchmarks/readme_figures.py           # rewrite README.md
    python benchmarks/readme_figures.py --check   # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- BEGIN figures -->", "<!-- END figures -->"


def _load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text())["results"] if path.is_file() else None


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def _lfw(r) -> tuple[str, str]:
    by = {c["config"]: c for c in r["configs"]}
    parts = [f"{_pct(by['yunet']['accuracy'])} ± {100 * by['yunet']['accuracy_std']:.2f} "
             f"(AUC {by['yunet']['auc']:.4f})"] if "yunet" in by else []
    if "mtcnn" in by:
        parts.append(f"MTCNN {_pct(by['mtcnn']['accuracy'])}")
    crops = [c for c in r["configs"] if c["detector"] is None]
    if crops:
        best = max(crops, key=lambda c: c["accuracy"])
        parts.append(f"best centre crop, no detection {_pct(best['accuracy'])}")
    return (f"LFW, all {r['n_pairs']:,} pairs, 10-fold, pretrained `facenet` + YuNet + alignment (bench_lfw.py)",
            "; ".join(parts))


def _peers(r) -> tuple[str, str]:
    a = r["accuracy"]
    return (f"LFW fold 1 ({r['n_pairs']} pairs), same run: embedkit / face_recognition (dlib) / deepface, same "
            "weights (bench_peers.py)",
            " / ".join(_pct(a[k]["accuracy"]) for k in ("embedkit", "dlib", "deepface")))


def _find(r) -> list[tuple[str, str]]:
    f = r.get("find")
    if not f:
        return []
    return [(f"Whole `query` of a photo vs `DeepFace.find`, p50 over {f['photos']:,} photos (bench_peers.py)",
             f"{f['embedkit_query']['p50_ms']:.0f} ms vs {f['deepface_find']['p50_ms']:.0f} ms "
             f"({f['speedup_query_p50']:.1f}x)")]


def _att_query(r) -> tuple[str, str]:
    return (f"AT&T, leave-one-out `query` rank-1 over {r[0]['faces']} faces (bench_att_query.py)",
            ", ".join(f"{_pct(x['rank1'], 0)} ({x['setting']})" for x in r))


def _before_after(rep: dict) -> str:
    """Before -> after at validation thresholds with McNemar's verdict; runs stored before the
    trainer reported that give the saved model at its validation threshold and say so."""
    head = rep.get("headline")
    if head:
        return (f"{_pct(head['before_accuracy'])} -> {_pct(head['after_accuracy'])} at validation thresholds "
                f"(McNemar p = {head['p_value']:.2g}: {head['verdict']})")
    return (f"after {_pct(rep['after_at_val_threshold'])} at the validation threshold; before "
            f"{_pct(rep['before']['accuracy'])} only as test-pair CV (stored run predates validation-threshold "
            "before/after: rerun)")


def _utkface(r) -> tuple[str, str]:
    cells = []
    for name, run in r.items():
        rep = run["report"]
        cells.append(f"`{rep['backbone']}` {_before_after(rep)}")
    return ("Fine-tuning, UTKFace protocol: augmentation invariance (a 'same' pair is two augmented copies of one "
            "photo; held-out people), before -> after (bench_finetune.py utkface)", "; ".join(cells))


def _att_lfw_finetune(att, lfw) -> tuple[str, str]:
    cells = []
    if att:
        rep = att["report"]
        cells.append(f"AT&T ({rep['test']['people']} held-out people) {_before_after(rep)}")
    if lfw:
        o = lfw["official_fold10"]
        cells.append(f"LFW fold 10's official pairs {_pct(o['pretrained']['accuracy_at_other_folds_threshold'])} -> "
                     f"{_pct(o['fine-tuned']['accuracy_at_other_folds_threshold'])} at the folds 1-9 threshold")
    return ("Fine-tuning on the pretraining domain: AT&T / LFW folds 1-9 -> fold 10 (bench_finetune.py att lfw)",
            "; ".join(cells))


def _shift(r) -> tuple[str, str]:
    cells = []
    for shift, by_loss in r["shifts"].items():
        loss = r["chosen"][shift]
        row = by_loss[loss]
        tried = sum(run["shift"] == shift for run in r["runs"].values())
        cells.append(f"{shift}: clean {_pct(row['clean_accuracy'])}, shifted {_pct(row['before_accuracy'])} "
                     f"-> fine-tuned ({loss}, chosen by validation AUC of {tried} runs) {_pct(row['after_accuracy'])}, "
                     f"{_pct(row['recovered_fraction'], 0)} of the loss recovered "
                     f"(McNemar p = {row['p_value']:.2g}: {row['mcnemar']['verdict']}); TAR@1e-3 "
                     f"{_pct(row['before_tar_1e-3'])} -> {_pct(row['after_tar_1e-3'])}")
    return ("Fine-tuning under domain shift, LFW fold 10's 600 official pairs, validation thresholds "
            "(bench_finetune_shift.py)", "; ".join(cells))


def _shift_ten_fold(r) -> tuple[str, str]:
    p, s = r["pooled"], r["setting"]
    m = p["mcnemar"]

    def cell(name):
        if p[name]["fold_std"] is None:
            return _pct(p[name]["fold_mean"])
        return f"{_pct(p[name]['fold_mean'])} ± {_pct(p[name]['fold_std'])}"

    folds = ("10-fold, all" if p["n_folds"] == 10
             else f"{p['n_folds']} of the 10 folds so far ({', '.join(map(str, p['folds']))}),")
    return (f"Fine-tuning under domain shift, LFW {folds} {p['n_pairs']:,} official pairs, "
            f"{s['shift']}: each fold tested on a model fine-tuned on the other folds' people "
            "(bench_finetune_shift.py --ten-fold)",
            f"clean {cell('clean')}, shifted {cell('before')} -> fine-tuned ({s['loss']}, {s['training']}, fixed "
            f"for every fold) {cell('after')}; recovered {_pct(p['recovered_fraction'])} of what the shift costs; "
            f"McNemar on the pooled pairs {m['only_before_right']} vs {m['only_after_right']}, p = "
            f"{m['p_value']:.2g}: {m['verdict']}; TAR@1e-3 {_pct(p['before']['tar_at_far_1e-3'])} -> "
            f"{_pct(p['after']['tar_at_far_1e-3'])}")


def _speed(r) -> list[tuple[str, str]]:
    rows = [("End to end (decode, detect, align, embed) (bench_speed.py)",
             f"{r['end_to_end']['photos_per_second']:.0f} photos/s; embedding alone "
             f"{r['embed']['faces_per_second']:.0f} faces/s; YuNet {r['detect_yunet']['images_per_second']:.0f} photos/s")]
    iq = r.get("index_query")
    if iq:
        rows.append((f"Index {iq['index']['photos']:,} LFW photos ({iq['index']['faces']:,} faces) (bench_speed.py)",
                     f"{iq['index']['seconds']:.0f} s"))
        rows.append(("Search one face / whole `query` of a photo, p50 (bench_speed.py)",
                     f"{iq['search']['p50_ms']:.2f} ms / {iq['query_image']['p50_ms']:.0f} ms"))
    return rows


def _faiss(r) -> tuple[str, str]:
    big = max(row["n"] for row in r["rows"])
    target = r["target"]["recall_at_10"]
    cells = []
    for family in ("HNSW", "IVF-PQ+refine"):
        good = [row for row in r["rows"] if row["n"] == big and row["index"] == family and row["recall_at_10"] >= target]
        if good:
            best = min(good, key=lambda row: row["p50_ms"])
            cells.append(f"`{best['factory']}` {best['params']}: {best['p50_ms']:.2f} ms p50, recall@10 "
                         f"{best['recall_at_10']:.3f}")
    return (f"{big / 1e6:g}M faces, fastest FAISS setting with recall@10 >= {target} (bench_faiss.py)", "; ".join(cells))


def _lfw_other(litert, sface, fused) -> tuple[str, str]:
    cells = []
    for name, r in (("`facenet` on the LiteRT runtime", litert), ("`sface` (OpenCV SFace int8)", sface),
                    ("`facenet+sface` (the fused backbone)", fused)):
        if r:
            c = next((c for c in r["configs"] if c.get("config") == "yunet"), r["configs"][0])
            cells.append(f"{name} {_pct(c['accuracy'])} ± {100 * c['accuracy_std']:.2f}"
                         + (f", threshold {c['best_threshold']:.3f}" if "best_threshold" in c else ""))
    return ("LFW, all 6,000 pairs, 10-fold, other inference paths, YuNet (bench_lfw.py --runtime / --backbone)",
            "; ".join(cells))


def _quant(r) -> tuple[str, str]:
    cells = []
    for v in r["variants"]:
        cell = f"{v['variant']} {v['file_mb']:.0f} MB, {_pct(v['accuracy'])}"
        if "drop_pp" in v:
            cell += (f" ({v['drop_pp']:+.2f} pp drop, McNemar p = {v['mcnemar_vs_fp32']['p_value']:.2g}; "
                     f"{v['speedup_32']:.2f}x fp32's speed on 32 faces)")
        cells.append(cell)
    return (f"LFW, all {r['n_pairs']:,} pairs, 10-fold: quantised LiteRT conversions of `facenet` (bench_quant.py)",
            "; ".join(cells))


def _fusion(r) -> tuple[str, str]:
    cells = [f"{m['model']} {_pct(m['accuracy'])} ± {100 * m['accuracy_std']:.2f}" for m in r["models"]]
    tests = [f"{name} vs {t['against']}: McNemar p = {t['p_value']:.2g} ({t['verdict']})" for name, t in r["mcnemar"].items()]
    return (f"LFW, all {r['n_pairs']:,} pairs, 10-fold: score fusion of `facenet` and `sface` (bench_fusion.py)",
            "; ".join(cells + tests))


PEOPLE_METHODS = (("embedkit", "embedkit"), ("average_link", "average-link"), ("hdbscan", "HDBSCAN"),
                  ("chinese_whispers", "face_recognition + dlib chinese_whispers"),
                  ("chinese_whispers_documented", "chinese_whispers at its documented 0.5"))


def _people(r) -> list[tuple[str, str]]:
    rows = []
    cv, a, b = r.get("cv"), r.get("a"), r.get("b")
    backbone = r.get("backbone", "facenet")
    run = "bench_people.py" if backbone == "facenet" else f"bench_people.py --backbone {backbone}"
    embeddings = f"{backbone} embeddings"
    if cv:
        folds = cv["folds"]
        cells = [f"{name} F {cv['mean'][key]['bcubed_f']:.4f} (precision {cv['mean'][key]['bcubed_precision']:.4f})"
                 for key, name in PEOPLE_METHODS if key in cv["mean"]]
        cells += [f"embedkit minus {name}: {d['f_difference']:+.4f} (95% CI {d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}"
                  f"{'' if d['significant'] else ', not significant'})"
                  for key, name in PEOPLE_METHODS if (d := cv["embedkit_minus"].get(key))]
        rows.append((f"Clustering LFW people with >= 5 photos, {embeddings}, BCubed, identity-disjoint "
                     f"{cv['n_folds']}-fold cross-validation (each method tuned on one half of the people, scored "
                     f"on the other: {' / '.join(str(f['test']['n_photos']) for f in folds)} photos; mean of the "
                     f"halves) ({run})", "; ".join(cells)))
    if a:
        cells = [f"{name} F {a[key]['bcubed_f']:.4f} (precision {a[key]['bcubed_precision']:.4f})"
                 for key, name in PEOPLE_METHODS if key in a]
        cells.append(f"embedkit's default setting (chosen by hand while looking at this set's errors: not held out) "
                     f"F {a['default']['bcubed_f']:.4f} (precision {a['default']['bcubed_precision']:.4f})")
        rows.append((f"Clustering LFW people with >= 5 photos ({a['n_photos']:,} photos, {a['n_people']} people), "
                     f"{embeddings}, BCubed, each method at its setting tuned on LFW people with 2-4 photos ({run})",
                     "; ".join(cells)))
    if b:
        d = b["default"]
        rows.append((f"Clustering all {b['n_photos']:,} LFW photos ({b['n_people']:,} people), {embeddings}, "
                     f"default setting ({run})",
                     f"BCubed F {d['bcubed_f']:.3f} at precision {d['bcubed_precision']:.3f}; {d['singletons_alone']:,} "
                     f"of {d['true_singletons']:,} one-photo people stay alone"))
    speed = r.get("speed")
    if speed:
        rows.append((f"Clustering speed: {speed['faces']:,} faces, then {speed['new_faces']} new ones, {embeddings} "
                     f"({run})",
                     f"{speed['first_seconds']:.2f} s; {speed['second_seconds']:.2f} s"))
    return rows


def _people_att(r) -> tuple[str, str]:
    cells = []
    for backbone, run in r["backbones"].items():
        d = run["default"]
        split = ", ".join(s["person"] for s in run["splits"])
        cells.append(f"{backbone}: {d['n_clusters']} clusters, BCubed F {d['bcubed_f']:.4f} at precision "
                     f"{d['bcubed_precision']:.4f}" + (f" ({split} split)" if split else ""))
    timing = r.get("indexing")
    if timing:
        median = timing["median"]
        tools = [b for b in r["backbones"] if b in median]
        runs = len(timing["seconds"][tools[0]])
        cells.append(f"indexing the 400 photos (median of {runs} alternating runs): "
                     + ", ".join(f"{b} {median[b]:.1f} s" for b in median)
                     + ("; " + ", ".join(f"{b} {median['face_recognition'] / median[b]:.2f}x face_recognition's "
                                         f"speed" for b in tools) if "face_recognition" in median else ""))
    return ("AT&T indexed with default face settings then clustered with the library's defaults, 400 photos of 40 "
            "people (bench_people_att.py)", "; ".join(cells))


def _calibrate(r) -> tuple[str, str]:
    cells = [f"asked {run['far_target']:g}: held-out FAR {run['held_out']['far']:.2e}, TAR {_pct(run['held_out']['tar'])}"
             for run in r["runs"]]
    n = r["runs"][0]
    return (f"`calibrate` on LFW identity folds, {n['n_people']:,} people, {n['folds']} identity-disjoint folds "
            "(bench_calibrate.py)", "; ".join(cells))


def _cold(r) -> list[tuple[str, str]]:
    rows = []
    jobs = r["jobs"]
    names = {"compare": "cold `compare` of two photos", "compare-sface": "cold `compare --backbone sface`",
             "compare-fused": "cold `compare --backbone facenet+sface`", "query": "cold `query` against the 15k-face LFW index",
             "index300": "`index` of 300 LFW photos"}
    for job, name in names.items():
        j = jobs.get(job)
        if not j or "face_recognition" not in j:
            continue
        e, f = j["embedkit"], j["face_recognition"]
        rows.append((f"{name}, whole process, median of {j['repeats']} alternating runs vs face_recognition's CLI "
                     "(bench_cold.py)",
                     f"{e['seconds']:.2f} s, {e['peak_mb']:.0f} MB vs {f['seconds']:.2f} s, {f['peak_mb']:.0f} MB "
                     f"({j['time_ratio']:.2f}x the time)"))
    extra = [f"unchanged re-`index` {jobs['reindex']['embedkit']['seconds']:.2f} s" if "reindex" in jobs else None,
             f"missing photo fails in {jobs['fail']['embedkit']['seconds']:.2f} s" if "fail" in jobs else None]
    extra = [x for x in extra if x]
    if extra:
        rows.append(("Cold start, no model loaded (bench_cold.py)", "; ".join(extra)))
    return rows


def _server(r) -> tuple[str, str]:
    rows = {row["measure"]: row for row in r["rows"]}
    up = rows["answer (upload -> HTML)"]
    return (f"`embedkit serve`: a photo searched against {r['index_faces']:,} faces ({r['index_photos']:,} LFW photos), "
            f"upload to rendered answer, {r['queries']} uploads (bench_server.py)",
            f"p50 {up['p50 ms']} ms, p99 {up['p99 ms']} ms (load {r['load_average']['before']:.1f})")


def _ray(r) -> tuple[str, str]:
    cells = [f"{row['run']} {row.get('photos_per_s_after_startup', row['photos_per_s']):.1f} photos/s"
             + (" after its pool's start-up" if "photos_per_s_after_startup" in row else "")
             + (f" (overhead {100 * row['ray_overhead']:+.0f}%)" if "ray_overhead" in row else "")
             for row in r["rows"] if not row["run"].startswith("writer")]
    return (f"Indexing {r['photos']} LFW photos on this {r['cores']}-core machine: one process vs Ray (bench_ray.py)",
            "; ".join(cells))


def _scale(r) -> tuple[str, str]:
    rows = r["query"]["rows"]  # the setting bench_scale chose (fastest with recall@10 >= 0.95), else the best
    chosen = r["query"].get("chosen", {})
    best = next((row for row in rows if chosen and all(row.get(key, 10) == value for key, value in chosen.items())),
                max(rows, key=lambda row: row["recall_at_10"]))
    b = r["build"]
    beyond = "100M and 1B" if b["n"] >= 10_000_000 else "10M and beyond"
    return (f"{b['n'] / 1e6:g}M synthetic faces, `{b['factory']}` memory-mapped, one thread (bench_scale.py; "
            f"{beyond} are projections in RESULTS.md)",
            f"nprobe {best['nprobe']}, {best.get('rescore_factor', 10)} x k candidates rescored: p50 {best['p50_ms']:.0f} ms, p99 {best['p99_ms']:.0f} ms, recall@10 "
            f"{best['recall_at_10']:.3f}; {best['rss_after_mb']:.0f} MB resident"
            + (f" ({best['rss_anon_mb']:.0f} MB its own, the rest mapped files)" if "rss_anon_mb" in best else "")
            + f"; FAISS file {b['faiss_file_mb']:.0f} MB "
            f"(measured at load {best['load_average_1min']:.1f} on 2 cores"
            + (": shared machine)" if best["load_average_1min"] > 2 else ")"))


# README rows in display order: the result files each row reads, and the function that makes
# its row (or rows) from them. A row whose files are all missing is left out.
SECTIONS = (
    (("lfw",), _lfw),
    (("lfw-litert", "lfw-sface-opencv-onnx", "lfw-fused"), _lfw_other),
    (("quant",), _quant),
    (("fusion",), _fusion),
    (("peers",), _peers),
    (("att_query",), _att_query),
    (("finetune_att", "finetune_lfw"), _att_lfw_finetune),
    (("finetune_utkface",), _utkface),
    (("finetune_shift",), _shift),
    (("finetune_shift_10fold",), _shift_ten_fold),
    (("finetune_shift_10fold_top6",), _shift_ten_fold),
    (("speed",), _speed),
    (("peers",), _find),
    (("faiss",), _faiss),
    (("people",), _people),
    (("people_fused",), _people),
    (("people_att",), _people_att),
    (("calibrate",), _calibrate),
    (("server",), _server),
    (("ray",), _ray),
    (("scale",), _scale),
    (("cold",), _cold),
)


def figure_rows() -> list[tuple[str, str]]:
    rows = []
    for names, make in SECTIONS:
        data = [_load(name) for name in names]
        if any(data):
            made = make(*data)
            rows += made if isinstance(made, list) else [made]
    return rows


def table() -> str:
    lines = ["| what | figure |", "| --- | --- |"]
    lines += [f"| {what} | {figure} |" for what, figure in figure_rows()]
    return "\n".join(lines)


def rewrite(text: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{README}: no {BEGIN} ... {END} block to rewrite")
    return pattern.sub(lambda _: f"{BEGIN}\n{table()}\n{END}", text, count=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new = rewrite(text)
    if args.check:
        if new != text:
            print(f"{README} figures are out of date: run python benchmarks/readme_figures.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
