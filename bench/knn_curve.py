"""The kNN graph's recall-time curve: candidate generation by IVF-PQ (eight-bit PQ64, the old
index) and fast-scan IVF-PQ (PQ128x4fs, the same 64 bytes, today's), then facesieve's exact
re-ranking (``IndexReader``'s float32 shortlist, float64 on what can still be in the top K).

N synthetic faces (calibrated on LFW, as bench/scale.py), one index per code type built with
facesieve's own codec (``sa_encode``, then ``faiss_io.add_codes``). For each nprobe and number
of candidates: queries/s of the search (FAISS on every core) and of the re-ranking (one thread)
over ``--timed`` faces, and the same-identity recall of the K rows of ``--queries`` sampled
faces against exact search (the share of a face's exact K nearest of its own identity that the
row holds). The graph of N faces takes about N / search q/s + N / (re-rank q/s x cores).

    python bench/knn_curve.py [--faces 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

import faiss
import numpy as np

from facesieve.devtools.synthetic import LFW_COSINE_STATS, calibrate, identities
from facesieve.index.faiss_io import add_codes
from facesieve.index.reader import exact_sims, shortlist, top_k

log = logging.getLogger("bench.knn_curve")

K = 32
CHUNK = 256


def build(factory: str, x: np.ndarray, rng: np.random.Generator) -> tuple[faiss.Index, dict]:
    t = time.perf_counter()
    index = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    nlist = faiss.extract_index_ivf(index).nlist
    index.train(x[rng.choice(len(x), min(len(x), 40 * nlist), replace=False)])
    trained = time.perf_counter() - t
    t = time.perf_counter()
    codes = index.sa_encode(x)
    encoded = time.perf_counter() - t
    t = time.perf_counter()
    add_codes(index, np.arange(len(x), dtype=np.int64), codes)
    added = time.perf_counter() - t
    times = {"train_s": round(trained, 1), "encode_s": round(encoded, 1), "add_s": round(added, 1)}
    return index, times


def rerank(x: np.ndarray, queries: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """The K best of each row's candidates by exact cosine with IndexReader.search_ids's own
    pieces (shortlist, exact_sims, top_k). Its loop is repeated here because the index here is a
    bare FAISS index over rows 0..N-1, with no output store: ids are rows, so the id-to-row
    lookup search_ids does per candidate is skipped, and re-ranking times here are higher than
    in the pipeline (docs/BENCHMARKS.md says so). It re-ranks the float32 values: the curve was
    measured before the pipeline moved to float16 (which costs it about a quarter more time)."""
    out = np.empty((len(queries), K), np.int64)
    for c0 in range(0, len(queries), CHUNK):
        q, c = x[queries[c0 : c0 + CHUNK]], cand[c0 : c0 + CHUNK]
        c = np.where(c == queries[c0 : c0 + CHUNK, None], -1, c)
        rows = x[np.maximum(c, 0)]
        c, cols = shortlist(q, c, rows, K)
        sims = exact_sims(q, np.take_along_axis(rows, cols[:, :, None], 1))
        sims[c < 0] = -np.inf
        ties = np.broadcast_to(np.maximum(c, 0).astype(np.uint64), c.shape)
        out[c0 : c0 + CHUNK] = top_k(c, sims, ties, K)[0]
    return out


def same_identity_recall(
    rows: np.ndarray, truth: np.ndarray, labels: np.ndarray, qs: np.ndarray
) -> float:
    wanted = found = 0
    for row, exact, q in zip(rows, truth, qs, strict=True):
        mine = {int(v) for v in exact if labels[v] == labels[q]}
        wanted += len(mine)
        found += len(mine & set(row.tolist()))
    return round(found / max(wanted, 1), 4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--faces", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2000, help="faces whose recall is measured")
    ap.add_argument("--timed", type=int, default=20000, help="faces whose rows are timed")
    ap.add_argument("--factories", default="IVF4096,PQ64;IVF4096,PQ128x4fs")
    ap.add_argument("--nprobes", default="16,32,64")
    ap.add_argument("--candidates", default="64,100")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, stream=sys.stderr)
    x, labels = identities(calibrate(LFW_COSINE_STATS), args.faces)
    rng = np.random.default_rng(0)
    qs = rng.choice(len(x), args.queries, replace=False)
    timed = rng.choice(len(x), args.timed, replace=False)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    truth = exact.search(x[qs], K + 1)[1]
    del exact
    truth = np.array([[v for v in row if v != q][:K] for row, q in zip(truth, qs, strict=True)])
    results: list[dict[str, Any]] = []
    for factory in args.factories.split(";"):
        index, times = build(factory, x, rng)
        log.info("%s: %s", factory, times)
        for nprobe in map(int, args.nprobes.split(",")):
            faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
            for n_cand in map(int, args.candidates.split(",")):
                t = time.perf_counter()
                cand = index.search(x[timed], n_cand + 1)[1]
                search_qps = len(timed) / (time.perf_counter() - t)
                t = time.perf_counter()
                rerank(x, timed, cand)
                rerank_qps = len(timed) / (time.perf_counter() - t)
                rows = rerank(x, qs, index.search(x[qs], n_cand + 1)[1])
                result = {
                    "factory": factory, **times, "nprobe": nprobe, "candidates": n_cand,
                    "search_qps": round(search_qps), "rerank_qps_one_thread": round(rerank_qps),
                    "same_identity_recall": same_identity_recall(rows, truth, labels, qs),
                }  # fmt: skip
                log.info("%s", result)
                results.append(result)
    print(json.dumps({"faces": args.faces, "k": K, "results": results}, indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
