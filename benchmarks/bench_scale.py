"""Search at scale: an embedkit index of 10M synthetic faces, opened without
reading its vectors into memory.

The vectors are the face-like 128-d unit vectors of ``bench_faiss.py``, made in
chunks of ``--chunk`` (each chunk its own population of identities, seed = chunk
number), so that no more than one chunk is ever in memory. Queries are new
samples of identities in the collection (``--queries`` in all, spread over the
chunks). Ground truth is exact inner-product search over all N vectors, merged
chunk by chunk.

Phases (each writes its figures to ``benchmarks/results/scale.json`` as soon as
it ends, so a long run that is stopped keeps what it measured):

1. build: train the IVF-PQ index on a sample from every chunk, add all N
   vectors under their face ids, write it as an index folder's
   ``vectors-1.faiss``, and (unless ``--no-store``) write the SQLite store a real
   index has beside it: a file, a content and a face row (with its 512-byte
   vector) per vector.
2. query, in a fresh process: ``FaceIndex.open`` + ``search`` as ``embedkit
   query`` does (the FAISS file memory-mapped), one query per call, k=10, at
   each ``--nprobe``: open time, resident memory (RSS) after opening and after
   the queries, p50/p99 query time and recall@10 against exact search. Also the
   RSS of reading the same FAISS file into memory, for comparison.

    nice -n 15 python benchmarks/bench_scale.py                  # 10M: the default (1.5 h+ on 2 busy cores)
    nice -n 15 python benchmarks/bench_scale.py --n 3000000 --factory IVF2048,PQ32 --train 80000 \
        --nprobe 64,128,256,512                                   # the recorded run (35 min on 2 busy cores)
    python benchmarks/bench_scale.py --n 200000 --no-write     # smoke run
    python benchmarks/bench_scale.py --query-only               # rerun phase 2 on the built index

Writes section ``scale`` of benchmarks/RESULTS.md and benchmarks/results/scale.json
(unless --no-write). Timings depend on machine load, which is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_faiss.py

import faiss  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
try:  # run as a script (benchmarks/ on sys.path) or as benchmarks.bench_scale
    from bench_faiss import K, _recall, _rss_mib, face_like_vectors
    from results import markdown_table, write_json, write_section
except ImportError:  # pragma: no cover
    from benchmarks.bench_faiss import K, _recall, _rss_mib, face_like_vectors
    from benchmarks.results import markdown_table, write_json, write_section

from embedkit.index import face_index  # noqa: E402
from embedkit.index import vectors as vec  # noqa: E402
from embedkit.index.face_index import STORE_FILE, FaceIndex  # noqa: E402
from embedkit.index.store import MetadataStore  # noqa: E402

DIM = 128
GENERATION = 1
BUILD_FILE = "bench-build.json"  # in the index folder: the build's settings and figures, for --query-only


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _chunks(n: int, chunk: int):
    for number, start in enumerate(range(0, n, chunk)):
        yield number, start, min(chunk, n - start)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status: VmHWM (peak resident), RssAnon (its own
    memory), RssFile (pages of mapped files: the OS can drop them and read them again)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# ---------------------------------------------------------------- phase 1: build

def build(args, state: dict) -> None:
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    n_chunks = len(range(0, args.n, args.chunk))
    per_chunk_train = -(-args.train // n_chunks)
    per_chunk_queries = -(-args.queries // n_chunks)

    t0 = time.perf_counter()
    samples, queries = [], []
    rng = np.random.default_rng(12345)
    for number, _, size in _chunks(args.n, args.chunk):
        xb, _, xq, _ = face_like_vectors(size, per_chunk_queries, seed=number)
        samples.append(xb[rng.choice(size, min(size, per_chunk_train), replace=False)])
        queries.append(xq)
        del xb
    xq = np.concatenate(queries)[: args.queries]
    train = np.concatenate(samples)
    gen_s = time.perf_counter() - t0
    log(f"sampled {len(train):,} training vectors and {len(xq)} queries in {gen_s:.0f}s")

    faiss.omp_set_num_threads(args.build_threads)
    factory = args.factory
    index = vec.new_index(factory, DIM)
    vec.skip_polysemous_training(index)  # as vec.build_index does
    t0 = time.perf_counter()
    index.train(train)
    train_s = time.perf_counter() - t0
    log(f"trained {factory} in {train_s:.0f}s")
    del train, samples

    store = None
    if not args.no_store:
        if (folder / STORE_FILE).exists():
            (folder / STORE_FILE).unlink()
        store = MetadataStore(folder / STORE_FILE, create=True)
        store.begin_write()
        store.set_info_many({"model_id": "synthetic-face-like", "backbone": "synthetic", "embedding_dim": str(DIM),
                             "extractor": "null", "factory": factory, "search_params": "",
                             "source": "{}", "generation": str(GENERATION)})
        store.commit()

    loads = []
    truth_d = np.full((len(xq), K), -np.inf, dtype=np.float32)
    truth_i = np.full((len(xq), K), -1, dtype=np.int64)
    add_s = store_s = 0.0
    for number, start, size in _chunks(args.n, args.chunk):
        xb, _, _, _ = face_like_vectors(size, per_chunk_queries, seed=number)
        ids = np.arange(start + 1, start + size + 1, dtype=np.int64)  # SQLite ids start at 1
        t0 = time.perf_counter()
        index.add_with_ids(xb, ids)
        add_s += time.perf_counter() - t0
        d, i = faiss.knn(xq, xb, K, faiss.METRIC_INNER_PRODUCT)
        truth_d, truth_i = _merge(truth_d, truth_i, d, i + start + 1)
        if store is not None:
            t0 = time.perf_counter()
            _store_chunk(store, ids, xb)
            store_s += time.perf_counter() - t0
        loads.append(_load())
        log(f"chunk {number}: {start + size:,} / {args.n:,} added (add {add_s:.0f}s, store {store_s:.0f}s, "
            f"load {loads[-1]})")
        del xb
    if store is not None:
        store.close()

    t0 = time.perf_counter()
    path, record = vec.save_index(index, folder, GENERATION)
    save_s = time.perf_counter() - t0
    if not args.no_store:  # as `embedkit index` does: the store keeps the file's checksum and type
        store = MetadataStore(folder / STORE_FILE)
        store.record_vectors(record)
        store.close()
    np.save(folder / "queries.npy", xq)
    np.save(folder / "truth.npy", truth_i)
    state["build"] = {
        "n": args.n, "factory": factory, "train_vectors": int(min(args.n, per_chunk_train * n_chunks)),
        "train_s": round(train_s, 1), "add_s": round(add_s, 1), "build_s": round(train_s + add_s, 1),
        "save_s": round(save_s, 1), "store_write_s": round(store_s, 1),
        "faiss_file_mb": round(path.stat().st_size / 2**20, 1),
        "store_file_mb": round((folder / STORE_FILE).stat().st_size / 2**20, 1) if store is not None else None,
        "build_threads": args.build_threads, "peak_rss_mb": _status_mib("VmHWM"),
        "load_average_1min": _load(), "mean_load_while_adding": round(float(np.mean(loads)), 2),
    }
    (folder / BUILD_FILE).write_text(json.dumps({"config": state["config"], "build": state["build"]}, indent=2))
    log(f"build: {state['build']}")


def _merge(d1, i1, d2, i2):
    d = np.concatenate([d1, d2], axis=1)
    i = np.concatenate([i1, i2], axis=1)
    order = np.argsort(-d, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)


def _store_chunk(store: MetadataStore, ids: np.ndarray, xb: np.ndarray) -> None:
    """One file, one content and one face (with its vector) per id, as ``embedkit index`` writes them."""
    now = time.time()
    shas = [f"{int(i):064x}" for i in ids]
    store.begin_write()
    db = store.db
    db.executemany("INSERT INTO contents(sha256, n_faces) VALUES (?, 1)", ((s,) for s in shas))
    db.executemany("INSERT INTO files(path, sha256, size, mtime_ns, label, indexed_at) VALUES (?,?,?,?,?,?)",
                   ((f"/archive/{int(i) // 1000:07d}/{int(i)}.jpg", s, 50_000, 0, None, now)
                    for i, s in zip(ids, shas)))
    db.executemany("INSERT INTO faces(id, sha256, face_no, x, y, w, h, score, vector) VALUES (?,?,0,0,0,64,64,1,?)",
                   ((int(i), s, v.tobytes()) for i, s, v in zip(ids, shas, xb)))
    store.commit()


# ---------------------------------------------------------------- phase 2: query (own process)

def query(args) -> dict:
    """Run in a fresh process: open the index as `embedkit query` does and search it."""
    faiss.omp_set_num_threads(args.threads)
    folder = Path(args.dir)
    xq = np.load(folder / "queries.npy")
    truth = np.load(folder / "truth.npy")
    rss_start = _rss_mib()
    t0 = time.perf_counter()
    index = FaceIndex.open(folder)
    index.search(xq[:1], K)  # opens the FAISS file (memory-mapped)
    open_ms = (time.perf_counter() - t0) * 1e3
    rss_open = _rss_mib()
    out = {"open_ms": round(open_ms, 1), "rss_before_open_mb": round(rss_start, 1),
           "rss_after_open_mb": round(rss_open, 1), "rows": []}
    for nprobe, factor in ((n, f) for f in args.rescore for n in args.nprobe):
        vec.apply_search_params(index._index_for(index.store.generation)[0], f"nprobe={nprobe}")
        face_index.RESCORE_FACTOR = factor  # candidates rescored per result (the product's setting is 10)
        found = np.empty((len(xq), K), np.int64)
        lat = np.empty(len(xq))
        for n, q in enumerate(xq):
            t = time.perf_counter()
            matches = index.search(q, K)[0]
            lat[n] = (time.perf_counter() - t) * 1e3
            found[n] = [m["face_id"] for m in matches] + [-1] * (K - len(matches))
        per_query = np.array([_recall(f[None], t[None]) for f, t in zip(found, truth)])
        out["rows"].append({
            "nprobe": nprobe, "rescore_factor": factor, "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2), "recall_at_10": round(float(per_query.mean()), 4),
            # 95% interval of the mean over queries (normal approximation)
            "recall_ci95": round(1.96 * float(per_query.std(ddof=1)) / len(per_query) ** 0.5, 4),
            "rss_after_mb": round(_rss_mib(), 1), "rss_anon_mb": _status_mib("RssAnon"),
            "rss_file_mb": _status_mib("RssFile"), "load_average_1min": _load(),
        })
        log(f"nprobe={nprobe}, rescore x{factor}: {out['rows'][-1]}")
    index.close()
    return out


def read_whole_rss(args) -> dict:
    """RSS of reading the same FAISS file into memory (how it would open without mapping)."""
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    index = vec.load_index(Path(args.dir), GENERATION)
    return {"open_ms": round((time.perf_counter() - t0) * 1e3, 1), "rss_growth_mb": round(_rss_mib() - rss0, 1),
            "ntotal": int(index.ntotal)}


def _in_subprocess(args, phase: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--dir", str(args.dir), "--threads", str(args.threads),
           "--nprobe", ",".join(map(str, args.nprobe)), "--rescore", ",".join(map(str, args.rescore))]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    print("\n".join(line for line in done.stdout.splitlines() if not line.startswith("{")), flush=True)
    return json.loads(done.stdout.splitlines()[-1])


# ---------------------------------------------------------------- report

def _markdown(state: dict, args) -> str:
    b = state.get("build", {})
    q = state.get("query", {})
    whole = state.get("read_whole", {})
    searched = f"--nprobe {','.join(map(str, args.nprobe))} --rescore {','.join(map(str, args.rescore))}"
    lines = [
        f"Command: `nice -n 10 python benchmarks/bench_scale.py --n {args.n} --factory {args.factory} "
        f"--train {args.train} {searched} --dir {args.dir}`; the queries alone "
        f"(on the index it built): `python benchmarks/bench_scale.py --query-only {args.dir} {searched}`",
        "",
        f"{b.get('n', args.n):,} synthetic face-like 128-d unit vectors (as in `bench_faiss.py`, made in chunks of "
        f"{args.chunk:,}, each chunk its own identities), factory `{b.get('factory', args.factory)}` "
        f"(trained on {b.get('train_vectors', '?'):,} vectors), {args.queries} queries of indexed identities, k={K}, "
        f"{args.threads} FAISS thread(s). Recall@10 is against exact search over all vectors. Query time is "
        "`FaceIndex.search` per query (FAISS search on the memory-mapped file for `rescore_factor` x k "
        "candidates, rescored exactly with their vectors read from the SQLite store; embedkit uses "
        f"{face_index.RESCORE_FACTOR}). `recall_ci95`: half-width of the 95% interval of "
        "the mean over the queries; two settings differ significantly when their intervals do not overlap. "
        "Resident memory after the queries (`rss_after_mb`) is the process's own memory (`rss_anon_mb`) plus "
        "mapped files (`rss_file_mb`): its libraries (~30 MB) and the pages of the memory-mapped FAISS file the "
        "queries touched, page cache that the OS drops and reads again under memory pressure.",
        "",
        f"- build: train {b.get('train_s')} s + add {b.get('add_s')} s = {b.get('build_s')} s with "
        f"{b.get('build_threads', 1)} FAISS threads (mean load while adding {b.get('mean_load_while_adding')}); "
        f"SQLite store written in {b.get('store_write_s')} s; peak resident memory of the build "
        f"{b.get('peak_rss_mb')} MB (one chunk of vectors + the index being filled)",
        f"- on disk: FAISS file {b.get('faiss_file_mb')} MB, SQLite store {b.get('store_file_mb')} MB",
        f"- open (memory-mapped): {q.get('open_ms')} ms; resident memory {q.get('rss_before_open_mb')} MB before, "
        f"{q.get('rss_after_open_mb')} MB after opening",
        f"- the same FAISS file read into memory instead: +{whole.get('rss_growth_mb')} MB resident, "
        f"{whole.get('open_ms')} ms",
        "",
        markdown_table(q.get("rows", []), ["nprobe", "rescore_factor", "p50_ms", "p99_ms", "recall_at_10", "recall_ci95",
                                           "rss_after_mb", "rss_anon_mb", "rss_file_mb",
                                           "load_average_1min"]),
        "",
        f"Load average (1 min) at the end of the build: {b.get('load_average_1min')} on 2 cores (shared machine: "
        "timings are upper bounds).",
        _sharding(state),
    ]
    return "\n".join(lines)


SHARD_FACES = 10_000_000  # faces per shard in the sharding plan


def _chosen(rows: list[dict]) -> dict | None:
    """Of the settings embedkit searches with (its rescoring factor), the fastest with recall@10 >= 0.95,
    else the most accurate one."""
    rows = [r for r in rows if r.get("rescore_factor", face_index.RESCORE_FACTOR) == face_index.RESCORE_FACTOR]
    good = [r for r in rows if r["recall_at_10"] >= 0.95]
    return min(good, key=lambda r: r["p50_ms"]) if good else max(rows, key=lambda r: r["recall_at_10"], default=None)


def _sharding(state: dict) -> str:
    """Sharding across machines, on paper, from the measured figures."""
    b, q = state.get("build", {}), state.get("query", {})
    row = _chosen(q.get("rows", []))
    if not b or not row:
        return ""
    n = b["n"]
    faiss_b = b["faiss_file_mb"] * 2**20 / n
    store_b = (b["store_file_mb"] or 0) * 2**20 / n
    shard_ms = row["p50_ms"] * (SHARD_FACES / n) ** 0.5
    shard_p99 = row["p99_ms"] * (SHARD_FACES / n) ** 0.5
    lines = [
        "",
        f"**Sharding across machines (on paper; projections from the figures above).** Measured per face: "
        f"{faiss_b:.0f} bytes of FAISS file (PQ codes + id) and {store_b:.0f} bytes of SQLite store (file, "
        f"content and face rows with the 512-byte vector). The chosen setting (embedkit's {face_index.RESCORE_FACTOR} x k candidates "
        f"rescored; more would reach the same recall with fewer lists, see the table) is nprobe={row['nprobe']} (p50 {row['p50_ms']} ms, recall@10 {row['recall_at_10']} at {n:,}).",
        "",
        f"- Each shard holds {SHARD_FACES:,} faces: its IVF-PQ file (~{faiss_b * SHARD_FACES / 2**30:.1f} GiB, "
        f"memory-mapped; RAM for the hot lists only), and the SQLite rows of its faces "
        f"(~{store_b * SHARD_FACES / 2**30:.1f} GiB on local SSD), ids by range (shard number in the high bits). "
        "All shards share one trained coarse quantizer and PQ codebooks (trained once on a sample), so their "
        "scores compare; rescoring from each shard's own vectors makes them exact anyway.",
        "- A query goes to every shard in parallel (FAISS `IndexShards` does this within one process; across "
        "machines a thin RPC fan-out, or a vector database such as Milvus, which shards, replicates and merges "
        "the same IVF-PQ segments); each returns its k best, rescored exactly from its own store, and the "
        "coordinator merges them into the top k.",
        (f"- Query time per shard, projected from {n:,} to {SHARD_FACES:,} faces with nlist growing as sqrt(N) "
         f"(codes scanned grow as sqrt(N)): p50 ~{shard_ms:.1f} ms, p99 ~{shard_p99:.1f} ms on one core of this "
         "machine under its load." if n != SHARD_FACES else
         f"- Query time per shard: measured above at {n:,} faces, p50 {shard_ms:.1f} ms, p99 {shard_p99:.1f} ms "
         f"(one core of this machine, load {row['load_average_1min']}; resident {row['rss_after_mb']} MB)."),
    ]
    for total in (100_000_000, 1_000_000_000):
        shards = total // SHARD_FACES
        lines.append(
            f"- {total:,} faces: {shards} shards (~{faiss_b * total / 2**30:.0f} GiB FAISS, "
            f"~{store_b * total / 2**40:.2f} TiB SQLite in all), e.g. {max(1, shards // 10)} machine(s) with 10 "
            f"cores and 10 shards each. Expected query time, with a core per shard: the slowest shard plus the "
            f"fan-out (1-2 ms in one data centre), about {shard_p99 + 2:.0f} ms (a query waits for all shards, so "
            f"one shard's p99 sets it; measured on this busy machine: rescale by a quiet rerun); more queries "
            f"at once need more cores or replicas.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--factory", default="IVF4096,PQ32")
    parser.add_argument("--train", type=int, default=160_000, help="training vectors (about 40 per IVF list)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--nprobe", default="64,128,256,512,1024")
    parser.add_argument("--rescore", default=str(face_index.RESCORE_FACTOR),
                        help="candidates rescored per result, e.g. 10,40 (default: the product's)")
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads for the queries")
    parser.add_argument("--build-threads", type=int, default=os.cpu_count() or 1,
                        help="FAISS threads for training and adding (default: all cores)")
    parser.add_argument("--dir", default="/tmp/embedkit-bench-scale", help="where the index folder is built")
    parser.add_argument("--no-store", action="store_true", help="FAISS file only (no SQLite store)")
    parser.add_argument("--query-only", nargs="?", const="", metavar="DIR",
                        help="rerun only the queries on the index an earlier run built in DIR (default: --dir)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--phase", choices=["query", "read-whole"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.nprobe = [int(s) for s in str(args.nprobe).split(",") if s]
    args.rescore = [int(s) for s in str(args.rescore).split(",") if s]
    faiss.omp_set_num_threads(args.threads)

    if args.phase:
        result = query(args) if args.phase == "query" else read_whole_rss(args)
        print(json.dumps(result))
        return 0

    state: dict = {}
    if args.query_only is not None:
        args.dir = args.query_only or args.dir
        built = Path(args.dir) / BUILD_FILE
        if not built.is_file():
            print(f"{built}: not found (build the index first: run without --query-only)", file=sys.stderr)
            return 2
        state = json.loads(built.read_text())
        for key in ("n", "chunk", "factory", "train", "queries", "build_threads"):  # as it was built
            setattr(args, key, state["config"][key])

    def save():
        if not args.no_write:
            write_json("scale", state)
            write_section("scale", _markdown(state, args))

    state["config"] = {k: v for k, v in vars(args).items() if k not in ("phase", "query_only")}
    if args.query_only is None:
        build(args, state)
        save()
    state["query"] = _in_subprocess(args, "query")
    state["query"]["chosen"] = {key: (_chosen(state["query"]["rows"]) or {}).get(key)
                                for key in ("nprobe", "rescore_factor")}
    save()
    state["read_whole"] = _in_subprocess(args, "read-whole")
    save()
    print(_markdown(state, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
