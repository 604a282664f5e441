"""FAISS index choices for face search: exact vs HNSW vs IVF-PQ.

Synthetic 128-d, L2-normalised "face-like" vectors: identities whose centres
lie near a 48-d subspace, each with a geometric number of samples (mean 8),
and per-sample noise made of shared "pose/lighting" directions (16-d) plus
isotropic noise of random strength. Same-identity cosines come out around
0.65 +- 0.10, different-identity around 0.0 +- 0.12, roughly like FaceNet
embeddings. Queries are 1,000 new samples of identities in the collection, as
when a user looks up a new photo of someone already indexed.

For each collection size and index this measures build time (train + add),
index size (``faiss.serialize_index``) and process RSS growth, single-query
latency (one ``search`` call per query, k=10, like a user's ``query``), and
recall@10 against exact search. Search parameters (efSearch, nprobe) are swept
after one build. FAISS runs with ``--threads`` OpenMP threads (default 2).

Choices: HNSW32 with FAISS's default efConstruction=40 (80 gained ~0.01 recall
at 100k for about 3x the build time). The IVF index uses 4-bit fast-scan PQ
(``PQ64x4fs``, 32 bytes a vector) re-ranked with 8-bit scalar-quantised
vectors (``Refine(SQ8)``, 128 bytes); in a trial at 100k it reached the same
recall as 8-bit ``PQ32`` codes (also 32 bytes) in about half the time.
nlist is about 4 * sqrt(n), rounded to a power of two.

    python benchmarks/bench_faiss.py                 # 100k and 1M (several minutes)
    python benchmarks/bench_faiss.py --quick         # 20k smoke run, writes nothing
    python benchmarks/bench_faiss.py --sizes 100000

Writes section ``faiss`` of benchmarks/RESULTS.md and benchmarks/results/faiss.json
(unless --quick or --no-write).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

# Set before FAISS loads OpenMP: with the default (spinning) wait policy, 2
# OpenMP threads on a busy 2-core machine turn a 0.4 ms exact search into
# ~30 ms (each parallel region waits for a descheduled spinner). A user's
# environment setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

try:  # run as a script (benchmarks/ on sys.path) or as benchmarks.bench_faiss
    from results import markdown_table, write_json, write_section
except ImportError:  # pragma: no cover
    from benchmarks.results import markdown_table, write_json, write_section

DIM = 128
K = 10
TARGET_P50_MS = 2.0
TARGET_RECALL = 0.95


# ---------------------------------------------------------------- data

def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def face_like_vectors(n: int, n_queries: int = 1000, dim: int = DIM, seed: int = 0,
                      mean_per_identity: int = 8, latent: int = 48, nuisance: int = 16):
    """``(xb, labels, xq, query_labels)``: float32 unit vectors with identity structure."""
    rng = np.random.default_rng(seed)
    counts = rng.geometric(1.0 / mean_per_identity, size=n)
    total = np.cumsum(counts)
    n_ids = int(np.searchsorted(total, n)) + 1
    counts = counts[:n_ids].copy()
    counts[-1] -= total[n_ids - 1] - n
    labels = np.repeat(np.arange(n_ids), counts)

    basis = rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent * dim)
    centres = rng.standard_normal((n_ids, latent)).astype(np.float32) @ basis
    centres += 0.5 * rng.standard_normal((n_ids, dim)).astype(np.float32) / np.sqrt(dim)
    _normalise(centres)
    pose = rng.standard_normal((nuisance, dim)).astype(np.float32) / np.sqrt(nuisance * dim)

    def sample(lab: np.ndarray) -> np.ndarray:
        out = np.empty((lab.size, dim), dtype=np.float32)
        for start in range(0, lab.size, 200_000):  # bounded temporaries
            part = lab[start:start + 200_000]
            x = centres[part]
            strength = rng.uniform(0.3, 0.75, size=(part.size, 1)).astype(np.float32)
            x += strength * (rng.standard_normal((part.size, nuisance)).astype(np.float32) @ pose)
            x += strength * rng.standard_normal((part.size, dim)).astype(np.float32) / np.sqrt(dim)
            out[start:start + part.size] = _normalise(x)
        return out

    xb = sample(labels)
    query_labels = rng.integers(0, n_ids, size=n_queries)
    xq = sample(query_labels)
    return xb, labels, xq, query_labels


# ---------------------------------------------------------------- measuring

def _rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _single_queries(index, xq: np.ndarray, warmup: int = 20):
    """Search one query per call; return (ids (nq, K), latencies in ms)."""
    for i in range(min(warmup, len(xq))):
        index.search(xq[i:i + 1], K)
    ids = np.empty((len(xq), K), dtype=np.int64)
    lat = np.empty(len(xq))
    for i in range(len(xq)):
        q = xq[i:i + 1]
        t0 = time.perf_counter()
        _, found = index.search(q, K)
        lat[i] = (time.perf_counter() - t0) * 1e3
        ids[i] = found[0]
    return ids, lat


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth)]
    return float(np.mean(hits) / K)


def _row(n, name, factory, params, build_s, size_mb, rss_mb, ids, lat, truth):
    recall = _recall(ids, truth)
    p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    return {
        "n": n, "index": name, "factory": factory, "params": params,
        "build_s": round(build_s, 2), "size_mb": round(size_mb, 1),
        "rss_delta_mb": round(rss_mb, 1),
        "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "mean_ms": round(float(lat.mean()), 3),
        "recall_at_10": round(recall, 4),
        "meets_target": bool(name != "exact" and p50 <= TARGET_P50_MS and recall >= TARGET_RECALL),
    }


def _build(factory: str, xb: np.ndarray, train_size: int, setup=None):
    rss0 = _rss_mib()
    index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    if setup:
        setup(index)
    t0 = time.perf_counter()
    if not index.is_trained:
        rng = np.random.default_rng(1)
        sample = xb if train_size >= len(xb) else xb[np.sort(rng.choice(len(xb), train_size, replace=False))]
        index.train(sample)
    if factory.startswith("IDMap"):
        index.add_with_ids(xb, np.arange(len(xb), dtype=np.int64))
    else:
        index.add(xb)
    build_s = time.perf_counter() - t0
    size_mb = faiss.serialize_index(index).nbytes / 2**20
    return index, build_s, size_mb, _rss_mib() - rss0


def bench_size(n: int, args) -> list[dict]:
    log = lambda msg: print(f"[{n:>9,}] {msg}", flush=True)  # noqa: E731
    t0 = time.perf_counter()
    xb, _, xq, _ = face_like_vectors(n, args.queries, seed=args.seed)
    log(f"generated {n:,} + {len(xq)} query vectors in {time.perf_counter() - t0:.1f}s")
    rows = []

    # exact: ground truth (batched) and single-query latency
    index, build_s, size_mb, rss = _build("IDMap,Flat", xb, 0)
    _, truth = index.search(xq, K)
    ids, lat = _single_queries(index, xq)
    rows.append(_row(n, "exact", "IDMap,Flat", f"{args.threads} threads",
                     build_s, size_mb, rss, ids, lat, truth))
    log(f"exact: p50 {rows[-1]['p50_ms']} ms")
    if args.threads > 1:  # one query splits the scan over threads; show the 1-thread cost too
        faiss.omp_set_num_threads(1)
        ids, lat = _single_queries(index, xq)
        faiss.omp_set_num_threads(args.threads)
        rows.append(_row(n, "exact", "IDMap,Flat", "1 thread", build_s, size_mb, rss, ids, lat, truth))
        log(f"exact, 1 thread: p50 {rows[-1]['p50_ms']} ms")
    del index

    # HNSW: one build, sweep efSearch
    efc = args.ef_construction

    def hnsw_setup(index):
        index.hnsw.efConstruction = efc

    index, build_s, size_mb, rss = _build("HNSW32", xb, 0, hnsw_setup)
    log(f"HNSW32 built in {build_s:.1f}s")
    for ef in args.ef_search:
        index.hnsw.efSearch = ef
        ids, lat = _single_queries(index, xq)
        rows.append(_row(n, "HNSW", "HNSW32", f"efC={efc} efSearch={ef}",
                         build_s, size_mb, rss, ids, lat, truth))
        log(f"HNSW32 efSearch={ef}: p50 {rows[-1]['p50_ms']} ms, recall {rows[-1]['recall_at_10']}")
    del index

    # IVF-PQ (4-bit fast-scan codes) with an SQ8 re-ranking step: one build, sweep nprobe
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    pq = f"PQ{args.pq_m}x4fs"
    factory = f"IVF{nlist},{pq},Refine(SQ8)"
    index, build_s, size_mb, rss = _build(factory, xb, min(n, 40 * nlist))
    log(f"{factory} built in {build_s:.1f}s")
    refine = faiss.downcast_index(index)
    refine.k_factor = args.k_factor
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    base_size = faiss.serialize_index(refine.base_index).nbytes / 2**20
    nprobes = sorted({max(1, nlist // d) for d in (64, 16, 8, 4)})
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        ids, lat = _single_queries(index, xq)
        rows.append(_row(n, "IVF-PQ+refine", factory, f"nprobe={nprobe} k_factor={args.k_factor}",
                         build_s, size_mb, rss, ids, lat, truth))
        log(f"{factory} nprobe={nprobe}: p50 {rows[-1]['p50_ms']} ms, recall {rows[-1]['recall_at_10']}")
    # the PQ codes alone at the largest nprobe, to show what the re-ranking buys
    ids, lat = _single_queries(refine.base_index, xq)
    rows.append(_row(n, "IVF-PQ", f"IVF{nlist},{pq}", f"nprobe={nprobes[-1]}, no refine",
                     build_s, base_size, rss, ids, lat, truth))
    return rows


COLUMNS = ["n", "index", "factory", "params", "build_s", "size_mb", "p50_ms", "p99_ms",
           "recall_at_10", "meets_target"]


def _table(rows: list[dict]) -> str:
    return markdown_table(
        [dict(r, n=f"{r['n']:,}", meets_target="yes" if r["meets_target"] else "") for r in rows],
        COLUMNS,
    )


def _markdown(rows: list[dict], args, loads: list) -> str:
    lines = [
        f"Command: `python benchmarks/bench_faiss.py --sizes {','.join(map(str, args.sizes))}`",
        "",
        f"Synthetic face-like 128-d unit vectors (identities x ~8 noisy samples), "
        f"{args.queries} held-out queries of known identities, k={K}, "
        f"{args.threads} FAISS threads (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), "
        "single-query latency (one `search` per query). "
        f"Recall@10 is against exact search. Target: p50 <= {TARGET_P50_MS} ms with "
        f"recall@10 >= {TARGET_RECALL} at 1M for one approximate index. "
        "`size_mb` is the serialised index; build = train + add.",
        "",
        _table(rows),
        "",
    ]
    biggest = max(r["n"] for r in rows)
    winners = [r for r in rows if r["n"] == biggest and r["meets_target"]]
    if winners:
        best = min(winners, key=lambda r: r["p50_ms"])
        lines.append(f"At {biggest:,}: target met by {len(winners)} setting(s); fastest is "
                     f"{best['factory']} ({best['params']}): p50 {best['p50_ms']} ms, "
                     f"recall@10 {best['recall_at_10']}, {best['size_mb']} MB.")
    else:
        lines.append(f"At {biggest:,}: no approximate setting met the target.")
    lines.append(f"Load average (1 min) during the run: {', '.join(f'{x:.1f}' for x in loads)} "
                 "(the machine is shared; latencies are noisy when it is busy).")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated collection sizes (default: 100000,1000000)")
    parser.add_argument("--quick", action="store_true", help="20k vectors, 200 queries, write nothing")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef-search", default="64,128,256,512")
    parser.add_argument("--pq-m", type=int, default=64,
                        help="PQ sub-quantizers (4-bit fast-scan: m/2 bytes per vector)")
    parser.add_argument("--k-factor", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    args.sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    if args.quick:
        args.queries = min(args.queries, 200)
    args.ef_search = [int(s) for s in args.ef_search.split(",")]
    faiss.omp_set_num_threads(args.threads)

    rows, loads = [], [os.getloadavg()[0]]
    for n in args.sizes:
        rows.extend(bench_size(n, args))
        loads.append(os.getloadavg()[0])

    print()
    print(_table(rows))
    body = _markdown(rows, args, loads)
    print()
    print(body.splitlines()[-2])
    if args.quick or args.no_write:
        return 0
    write_section("faiss", body)
    path = write_json("faiss", {
        "config": {k: v for k, v in vars(args).items()},
        "target": {"p50_ms": TARGET_P50_MS, "recall_at_10": TARGET_RECALL},
        "load_average_1min": loads,
        "rows": rows,
    })
    print(f"wrote {path} and the 'faiss' section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
